package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/agetest"
)

// docsTokenScript is the complete shell example of docs/api.md, as a
// reader copies it.
func docsTokenScript(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```sh\n#!/bin/sh\n")
	script, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/api.md has no complete shell example")
	}
	return "#!/bin/sh\n" + script
}

// TestAPIDocsTokenScriptRuns runs the documented script with a token of
// alice's, curl, jq and the age commands against a real portal: it
// requests, waits while sam approves in his browser, downloads and
// decrypts credentials.txt, and, the credential having less than 14 days
// left, asks for its renewal.
func TestAPIDocsTokenScriptRuns(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"curl", "jq", "date"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the documented script needs %s on PATH: %v", tool, err)
		}
	}
	ageCmd, _ := agetest.Commands(t)
	p := newPortal(t, portalOptions{})
	c := testCluster("awi-ciroh")
	c.CredentialTTLDays = 7 // so that the script renews at once
	if err := p.Store.CreateCluster(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	token, _ := alice.makeToken("renewal job", "read", "request")

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", docsTokenScript(t))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORTAL="+p.URL, "PORTAL_TOKEN="+token, "POLL_SECONDS=0.2",
		"PATH="+filepath.Dir(ageCmd)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// sam approves once the request is there.
	for p.count(`SELECT count(*) FROM requests WHERE status = 'pending'`) == 0 {
		select {
		case err := <-exited:
			t.Fatalf("the script ended (%v) with no request:\n%s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	sam.approve(int64(p.count(`SELECT id FROM requests WHERE status = 'pending'`)), "welcome")
	if err := <-exited; err != nil {
		t.Fatalf("the documented script: %v\n%s", err, out)
	}
	file, err := os.ReadFile(filepath.Join(dir, "credentials.txt"))
	if err != nil || !strings.Contains(string(file), "Password:") {
		t.Fatalf("credentials.txt after the script: %v\n%s\n%s", err, file, out)
	}
	if !strings.Contains(out.String(), "renewal requested") ||
		p.count(`SELECT count(*) FROM requests WHERE status = 'pending' AND renews_credential_id IS NOT NULL`) != 1 {
		t.Errorf("the script asked for no renewal:\n%s", out)
	}
	p.wantAudited("request.created", 2)
}
