package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/chromedp/chromedp"
)

// chromium starts a headless Chromium for the test and returns a browser
// tab's context. The test fails, not skips, when Chromium is missing.
func chromium(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		t.Fatal("no Chromium for the browser tests: install it (Debian: apt-get install chromium) or set CHROMIUM to its path")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", bin, err)
	}
	return ctx
}

// screenshot saves the page to PORTAL_SCREENSHOTS, when set, for a person to
// look at.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("PORTAL_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}

// TestBrowserSignInAndRequest: in a real browser, a customer signs in through
// the development provider's chooser page, sees their role, and sends a
// request through the form; the staff member sees it in the queue and
// approves it; the customer sees the download link.
func TestBrowserSignInAndRequest(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	p.addCluster("awi-ciroh")
	key, _ := age.GenerateX25519Identity()

	alice := chromium(t)
	err := chromedp.Do(alice,
		chromedp.Navigate(p.URL+"/"),
		chromedp.Click(chromedp.CSS(`a[href="/login"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(`//a[contains(., "alice@example.org")]`),
		chromedp.Click(`//a[contains(., "alice@example.org")]`),
		chromedp.WaitVisible(chromedp.CSS(`.site-header .who`)),
	)
	if err != nil {
		t.Fatalf("sign in as alice: %v\n%s", err, p.logs.String())
	}
	header, err := chromedp.Run(alice, chromedp.Text(chromedp.CSS(`.site-header .who`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(header, "Alice Example") || !strings.Contains(header, "customer") {
		t.Errorf("header after sign-in: %q; want the name and the customer role", header)
	}
	screenshot(t, alice, "dashboard-customer")

	err = chromedp.Do(alice,
		chromedp.Navigate(p.URL+"/requests/new"),
		chromedp.SetValue(chromedp.CSS(`#cluster`), "awi-ciroh"),
		chromedp.SendKeys(chromedp.CSS(`#public_key`), key.Recipient().String()),
		chromedp.SendKeys(chromedp.CSS(`#justification`), "Grafana dashboards for our steering committee."),
		chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash-success`)),
	)
	if err != nil {
		t.Fatalf("send the request form: %v", err)
	}
	page, err := chromedp.Run(alice, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "pending") || !strings.Contains(page, "awi-ciroh") {
		t.Errorf("the request page after sending:\n%s", page)
	}
	screenshot(t, alice, "request-sent")

	sam := chromium(t)
	err = chromedp.Do(sam,
		chromedp.Navigate(p.URL+"/login?login_hint=sam@2i2c.org"),
		chromedp.WaitVisible(chromedp.CSS(`.role-staff`)),
		chromedp.Navigate(p.URL+"/staff/requests"),
		chromedp.WaitVisible(chromedp.CSS(`.queue-item`)),
	)
	if err != nil {
		t.Fatalf("staff queue: %v", err)
	}
	screenshot(t, sam, "staff-queue")
	err = chromedp.Do(sam,
		chromedp.Click(chromedp.CSS(`.queue-item a[href$="/approve"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/approve"] button`)),
		chromedp.Click(chromedp.CSS(`form[action$="/approve"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash-success`)),
	)
	if err != nil {
		t.Fatalf("approve in the browser: %v", err)
	}
	page, err = chromedp.Run(sam, chromedp.Text(chromedp.CSS(`.flash-success`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "approved") {
		t.Errorf("after approving: %q", page)
	}

	err = chromedp.Do(alice,
		chromedp.Navigate(p.URL+"/dashboard"),
		chromedp.Click(`//table[contains(@class,"requests")]//a[starts-with(., "Details")]`),
		chromedp.WaitVisible(chromedp.CSS(`a[href$="credentials.txt.age"]`)),
	)
	if err != nil {
		t.Fatalf("download link on the request page: %v", err)
	}
	screenshot(t, alice, "request-approved")

	// The credential's own page offers renewal, a compromise report and
	// revocation; a private key pasted into the form is refused and cleared.
	err = chromedp.Do(alice,
		chromedp.Click(`//a[.="Credential details"]`),
		chromedp.WaitVisible(chromedp.CSS(`a[href$="/report-compromised"]`)),
	)
	if err != nil {
		t.Fatalf("credential page: %v", err)
	}
	screenshot(t, alice, "credential")
	err = chromedp.Do(alice,
		chromedp.Navigate(p.URL+"/requests/new"),
		chromedp.SetValue(chromedp.CSS(`#cluster`), "awi-ciroh"),
		chromedp.SendKeys(chromedp.CSS(`#public_key`), key.String()),
		chromedp.SendKeys(chromedp.CSS(`#justification`), "Grafana dashboards for our steering committee."),
		chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type=submit]`)),
		chromedp.WaitVisible(`//*[contains(., "That was a private key")]`),
	)
	if err != nil {
		t.Fatalf("private key in the form: %v", err)
	}
	typed, err := chromedp.Run(alice, chromedp.Value(chromedp.CSS(`#public_key`)))
	if err != nil || typed != "" {
		t.Errorf("the key field after a private key: %q, %v; want it cleared", typed, err)
	}
	screenshot(t, alice, "private-key-refused")

	// The audit log shows what just happened, newest first.
	err = chromedp.Do(sam,
		chromedp.Navigate(p.URL+"/staff/audit"),
		chromedp.WaitVisible(`//td[contains(., "credential.issued")]`),
	)
	if err != nil {
		t.Fatalf("audit page: %v", err)
	}
	screenshot(t, sam, "staff-audit")
}
