package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"filippo.io/age/agessh"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/2i2c-org/credential-portal/internal/agetest"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

var requestPath = regexp.MustCompile(`^/requests/(\d+)$`)

var passwordLine = regexp.MustCompile(`(?m)^Password:\s+(\S+)$`)

// checkCredentialsFile checks a decrypted credentials.txt against the
// stored credential and returns its password.
func (p *testPortal) checkCredentialsFile(t *testing.T, file string, cluster *portal.Cluster) string {
	t.Helper()
	m := passwordLine.FindStringSubmatch(file)
	if m == nil {
		t.Fatalf("credentials.txt has no password line:\n%s", file)
	}
	if !strings.Contains(file, cluster.PrometheusURL) {
		t.Errorf("credentials.txt does not name %s", cluster.PrometheusURL)
	}
	var hash, username string
	err := p.Store.Pool().QueryRow(context.Background(),
		`SELECT password_hash, username FROM credentials WHERE cluster_id = $1 ORDER BY id DESC LIMIT 1`, cluster.ID).Scan(&hash, &username)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(file, "Username:        "+username) {
		t.Errorf("credentials.txt does not hold the stored username %s", username)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(m[1])); err != nil {
		t.Errorf("the password in credentials.txt does not verify against the stored hash: %v", err)
	}
	return m[1]
}

// assertSecretNowhere searches every table of the portal's database and the
// captured logs for secret.
func (p *testPortal) assertSecretNowhere(t *testing.T, secret string) {
	t.Helper()
	for _, table := range []string{"users", "sessions", "clusters", "requests", "credentials", "audit_events", "messages"} {
		n := p.count(`SELECT count(*) FROM `+table+` t WHERE strpos(row_to_json(t)::text, $1) > 0`, secret)
		if n != 0 {
			t.Errorf("the secret is in %d rows of %s", n, table)
		}
	}
	// Sessions are gob-encoded bytes; search them as bytes too.
	if n := p.count(`SELECT count(*) FROM sessions WHERE position(convert_to($1, 'UTF8') in data) > 0`, secret); n != 0 {
		t.Errorf("the secret is in %d session rows", n)
	}
	if strings.Contains(p.logs.String(), secret) {
		t.Error("the secret is in the logs")
	}
}

func TestRequestApproveDownloadWithAgeKey(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	cluster := p.addCluster("awi-ciroh")
	id := newKey(t)
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")

	reqID := alice.requestAccess("awi-ciroh", "  "+id.Recipient().String()+"\n", "Grafana dashboards for our steering committee.")
	page := alice.get(fmt.Sprintf("/requests/%d", reqID))
	if !strings.Contains(page.Body, "pending") || !strings.Contains(page.Body, "SHA256:") {
		t.Errorf("the request page shows no pending status or key fingerprint:\n%s", page.Body)
	}
	r := sam.approve(reqID, "welcome")
	if !strings.Contains(r.Body, "approved") {
		t.Errorf("the queue does not confirm the approval:\n%s", r.Body)
	}

	ciphertext, _ := alice.download(reqID)
	if !bytes.HasPrefix(ciphertext, []byte("age-encryption.org/v1\n")) {
		t.Fatalf("the download is not a binary age file: %q", ciphertext[:min(40, len(ciphertext))])
	}
	password := p.checkCredentialsFile(t, decryptWith(t, ciphertext, id), cluster)
	if n := p.count(`SELECT download_count FROM credentials WHERE request_id = $1`, reqID); n != 1 {
		t.Errorf("download count %d, want 1", n)
	}
	p.wantAudited(portal.ActionCredentialDownloaded, 1)
	// Staff see the credential but cannot download it.
	if r := sam.get(fmt.Sprintf("/credentials/%d/credentials.txt.age", p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID))); r.StatusCode != http.StatusNotFound {
		t.Errorf("staff download of a customer's credential: %d, want 404", r.StatusCode)
	}
	p.assertSecretNowhere(t, password)
}

func TestRequestApproveDownloadWithSSHKey(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	cluster := p.addCluster("2i2c")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " alice@laptop"
	id, err := agessh.NewEd25519Identity(priv)
	if err != nil {
		t.Fatal(err)
	}
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	reqID := alice.requestAccess("2i2c", line, "Query hub usage from our own Grafana.")
	sam.approve(reqID, "")
	ciphertext, _ := alice.download(reqID)
	password := p.checkCredentialsFile(t, decryptWith(t, ciphertext, id), cluster)
	p.assertSecretNowhere(t, password)
}

// TestCustomerDocumentationCommands follows the customer documentation
// word for word with the real age tools.
func TestCustomerDocumentationCommands(t *testing.T) {
	t.Parallel()
	ageCmd, keygenCmd := agetest.Commands(t)
	p := newPortal(t, portalOptions{})
	cluster := p.addCluster("awi-ciroh")
	dir := t.TempDir()

	keygen := exec.Command(keygenCmd, "-o", "key.txt")
	keygen.Dir = dir
	out, err := keygen.CombinedOutput()
	if err != nil {
		t.Fatalf("age-keygen -o key.txt: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Public key: (age1\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("age-keygen printed no public key: %s", out)
	}

	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	reqID := alice.requestAccess("awi-ciroh", "Public key: "+string(m[1]), "Monitoring our hub from CloudWatch.")
	sam.approve(reqID, "")
	ciphertext, _ := alice.download(reqID)
	if err := os.WriteFile(filepath.Join(dir, "credentials.txt.age"), ciphertext, 0o600); err != nil {
		t.Fatal(err)
	}
	dec := exec.Command(ageCmd, "--decrypt", "-i", "key.txt", "-o", "credentials.txt", "credentials.txt.age")
	dec.Dir = dir
	if out, err := dec.CombinedOutput(); err != nil {
		t.Fatalf("age --decrypt -i key.txt -o credentials.txt credentials.txt.age: %v\n%s", err, out)
	}
	file, err := os.ReadFile(filepath.Join(dir, "credentials.txt"))
	if err != nil {
		t.Fatal(err)
	}
	p.checkCredentialsFile(t, string(file), cluster)
}

func TestOthersCannotSeeOrDecide(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	reqID := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")

	before := p.snapshot()
	for _, path := range []string{fmt.Sprintf("/requests/%d", reqID), fmt.Sprintf("/api/v1/requests/%d", reqID)} {
		if r := bob.get(path); r.StatusCode != http.StatusNotFound {
			t.Errorf("another customer on %s: %d, want 404", path, r.StatusCode)
		}
	}
	if r := bob.apiPost(fmt.Sprintf("/api/v1/requests/%d/approve", reqID), `{"note":"self-service"}`); r.StatusCode != http.StatusForbidden {
		t.Errorf("a customer calling approve: %d, want 403", r.StatusCode)
	}
	if r := bob.apiPost(fmt.Sprintf("/api/v1/requests/%d/cancel", reqID), `{}`); r.StatusCode != http.StatusNotFound {
		t.Errorf("another customer cancelling: %d, want 404", r.StatusCode)
	}
	if after := p.snapshot(); after != before {
		t.Errorf("refused calls changed the database:\nbefore %s\nafter  %s", before, after)
	}

	sam.approve(reqID, "")
	credID := p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID)
	before = p.snapshot()
	for _, path := range []string{
		fmt.Sprintf("/credentials/%d", credID),
		fmt.Sprintf("/credentials/%d/credentials.txt.age", credID),
		fmt.Sprintf("/api/v1/credentials/%d", credID),
		fmt.Sprintf("/api/v1/credentials/%d/credentials.txt.age", credID),
	} {
		if r := bob.get(path); r.StatusCode != http.StatusNotFound {
			t.Errorf("another customer on %s: %d, want 404", path, r.StatusCode)
		}
	}
	if after := p.snapshot(); after != before {
		t.Errorf("refused downloads changed the database:\nbefore %s\nafter  %s", before, after)
	}
	p.wantAudited(portal.ActionAccessRefused, 1) // the customer's approve
}

func TestKeyRulesOnTheForm(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	idn := newKey(t)
	ecdsa := "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEm1Ue4tKzQ8Ie2QyvQ3IM3c5nkDXF0r1W4kF7pQ6wQ2bb3eE3F5YyoQmPz3DMzYvXb7FuZ0ZrJk8K7gZzK3Q8c= x"
	justification := "Dashboards for the research team."
	tests := []struct {
		name, key, want string
		private         bool
	}{
		{"age private key", idn.String(), "private key", true},
		{"OpenSSH private key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----", "private key", true},
		{"ECDSA", ecdsa, "cannot encrypt to ecdsa", false},
		{"plugin recipient", "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t", "plugin", false},
		{"two keys", idn.Recipient().String() + "\n" + idn.Recipient().String(), "one", false},
		{"too long", strings.Repeat("a", 5000), "", false},
		{"nonsense", "hello world", "age1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := alice.submit("/requests/new", "/requests", url.Values{"cluster": {"awi-ciroh"}, "public_key": {tt.key}, "justification": {justification}})
			if r.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.StatusCode)
			}
			if !strings.Contains(r.Body, tt.want) {
				t.Errorf("the form does not say %q:\n%s", tt.want, r.Body)
			}
			if !strings.Contains(r.Body, justification) {
				t.Error("the form lost the justification typed")
			}
			keyEchoed := strings.Contains(r.Body, firstLine(tt.key))
			if tt.private && keyEchoed {
				t.Error("the private key is shown back on the page")
			}
			if !tt.private && tt.name != "too long" && !keyEchoed {
				t.Error("the form lost the key typed")
			}
			if tt.private && !strings.Contains(r.Body, "never be shared") {
				t.Errorf("no warning that a private key must never be shared:\n%s", r.Body)
			}
		})
	}
	if n := p.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("%d requests stored from refused forms", n)
	}
	if strings.Contains(p.logs.String(), "AGE-SECRET-KEY") || strings.Contains(p.logs.String(), "PRIVATE KEY") {
		t.Error("a private key reached the logs")
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func TestOtherFormRefusals(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	closed := &portal.Cluster{Name: "closed", PrometheusURL: "https://prometheus.closed.2i2c.cloud", CredentialTTLDays: 30}
	if err := p.Store.CreateCluster(context.Background(), closed); err != nil {
		t.Fatal(err)
	}
	key := newKey(t).Recipient().String()
	tests := []struct {
		name, cluster, justification, want string
		status                             int
	}{
		{"short justification", "awi-ciroh", "grafana", "10 to 2000 characters", 422},
		{"unknown cluster", "nope", "A perfectly fine reason.", "Choose a cluster", 422},
		{"disabled cluster", "closed", "A perfectly fine reason.", "not taking new requests", 422},
	}
	for _, tt := range tests {
		r := alice.submit("/requests/new", "/requests", url.Values{"cluster": {tt.cluster}, "public_key": {key}, "justification": {tt.justification}})
		if r.StatusCode != tt.status || !strings.Contains(r.Body, tt.want) {
			t.Errorf("%s: %d, want %d saying %q", tt.name, r.StatusCode, tt.status, tt.want)
		}
	}
	if n := p.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("%d requests stored from refused forms", n)
	}

	// A second pending request for one cluster points at the first.
	first := alice.requestAccess("awi-ciroh", key, "A perfectly fine reason.")
	r := alice.submit("/requests/new", "/requests", url.Values{"cluster": {"awi-ciroh"}, "public_key": {key}, "justification": {"Another perfectly fine reason."}})
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.Body, fmt.Sprintf(`href="/requests/%d"`, first)) {
		t.Errorf("duplicate request: %d, want 409 with a link to #%d:\n%s", r.StatusCode, first, r.Body)
	}
	// Cancelling it frees the cluster for a new request.
	alice.submit(fmt.Sprintf("/requests/%d", first), fmt.Sprintf("/requests/%d/cancel", first), nil)
	if !strings.Contains(alice.get(fmt.Sprintf("/requests/%d", first)).Body, "cancelled") {
		t.Error("the cancelled request does not say so")
	}
	alice.requestAccess("awi-ciroh", key, "A perfectly fine reason, again.")
}

func TestStaffCannotApproveTheirOwnRequest(t *testing.T) {
	t.Parallel()
	p, _, _, sam := newScene(t)
	reqID := sam.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Debugging the probes on this cluster.")
	if !strings.Contains(sam.get("/staff/requests").Body, "another staff member must decide it") {
		t.Error("the queue offers staff to decide their own request")
	}
	r := sam.apiPost(fmt.Sprintf("/api/v1/requests/%d/approve", reqID), `{}`)
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "own request") {
		t.Errorf("self-approval: %d %s", r.StatusCode, r.Body)
	}
	if n := p.count(`SELECT count(*) FROM credentials`); n != 0 {
		t.Errorf("self-approval issued %d credentials", n)
	}
}

func TestDenyNeedsANote(t *testing.T) {
	t.Parallel()
	_, alice, _, sam := newScene(t)
	reqID := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	q := sam.get("/staff/requests")
	r := sam.post(fmt.Sprintf("/staff/requests/%d/deny", reqID), url.Values{"csrf": {csrfToken(t, q.Body)}, "note": {"  "}})
	if !strings.Contains(r.Body, "Say why the request is denied") {
		t.Errorf("deny without a note:\n%s", r.Body)
	}
	r = sam.post(fmt.Sprintf("/staff/requests/%d/deny", reqID), url.Values{"csrf": {csrfToken(t, q.Body)}, "note": {"Use the shared Grafana instead."}})
	page := alice.get(fmt.Sprintf("/requests/%d", reqID))
	if !strings.Contains(page.Body, "denied") || !strings.Contains(page.Body, "Use the shared Grafana instead.") {
		t.Errorf("the customer does not see the denial and its note:\n%s", page.Body)
	}
}

func TestJSONAPI(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	idn := newKey(t)

	var clusters struct {
		Clusters []struct{ Name, PrometheusURL string } `json:"clusters"`
	}
	decodeJSON(t, alice.get("/api/v1/clusters"), &clusters)
	if len(clusters.Clusters) != 1 || clusters.Clusters[0].Name != "awi-ciroh" {
		t.Errorf("GET /api/v1/clusters: %+v", clusters)
	}

	r := alice.apiPost("/api/v1/requests", fmt.Sprintf(`{"cluster":"awi-ciroh","public_key":%q,"justification":"Scripts that read hub metrics."}`, idn.Recipient()))
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/requests: %d %s", r.StatusCode, r.Body)
	}
	var created struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
	}
	decodeJSON(t, r, &created)
	if created.ID == 0 || created.Status != "pending" {
		t.Errorf("created request: %+v", created)
	}

	var errBody struct{ Error, Field string }
	r = alice.apiPost("/api/v1/requests", `{"cluster":"awi-ciroh","public_key":"AGE-SECRET-KEY-1QQQ","justification":"Scripts that read hub metrics."}`)
	decodeJSON(t, r, &errBody)
	if r.StatusCode != http.StatusUnprocessableEntity || errBody.Field != "public_key" || strings.Contains(r.Body, "AGE-SECRET-KEY-1QQQ") {
		t.Errorf("private key through the API: %d %s", r.StatusCode, r.Body)
	}
	r = alice.apiPost("/api/v1/requests", `{"cluster":"awi-ciroh","publickey":"x"}`)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "publickey") {
		t.Errorf("unknown field: %d %s", r.StatusCode, r.Body)
	}

	// CSRF defence of the API: JSON only, no foreign origin.
	form := url.Values{"cluster": {"awi-ciroh"}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/api/v1/requests", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := alice.do(req); r.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("a form post to the API: %d, want 415", r.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, p.URL+fmt.Sprintf("/api/v1/requests/%d/cancel", created.ID), strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	if r := alice.do(req); r.StatusCode != http.StatusForbidden {
		t.Errorf("a foreign origin: %d, want 403", r.StatusCode)
	}
	if r := p.browser().get("/api/v1/requests"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API without a session: %d, want 401", r.StatusCode)
	}

	var queue struct {
		Requests []struct{ ID int64 } `json:"requests"`
	}
	decodeJSON(t, sam.get("/api/v1/requests?status=pending"), &queue)
	if len(queue.Requests) != 1 || queue.Requests[0].ID != created.ID {
		t.Errorf("staff pending list: %+v", queue)
	}
	if r := sam.apiPost(fmt.Sprintf("/api/v1/requests/%d/approve", created.ID), `{"note":"ok"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("approve: %d %s", r.StatusCode, r.Body)
	}
	var got struct {
		Status       string `json:"status"`
		CredentialID int64  `json:"credential_id"`
	}
	decodeJSON(t, alice.get(fmt.Sprintf("/api/v1/requests/%d", created.ID)), &got)
	if got.Status != "approved" || got.CredentialID == 0 {
		t.Fatalf("request after approval: %+v", got)
	}
	var cred struct {
		Username, State, DownloadURL string
		PasswordHash                 string `json:"password_hash"`
	}
	r = alice.get(fmt.Sprintf("/api/v1/credentials/%d", got.CredentialID))
	decodeJSON(t, r, &cred)
	if cred.State != "active" || cred.Username == "" || strings.Contains(r.Body, "$2") {
		t.Errorf("credential JSON: %s", r.Body)
	}
	r = alice.get(fmt.Sprintf("/api/v1/credentials/%d/credentials.txt.age", got.CredentialID))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("API download: %d", r.StatusCode)
	}
	decryptWith(t, []byte(r.Body), idn)
	if r := sam.apiPost(fmt.Sprintf("/api/v1/requests/%d/approve", created.ID), `{}`); r.StatusCode != http.StatusConflict ||
		!strings.Contains(r.Body, "already approved") {
		t.Errorf("approving twice: %d %s", r.StatusCode, r.Body)
	}
}

func decodeJSON(t *testing.T, r response, v any) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q, body %s", r.Request.URL, ct, r.Body)
	}
	if err := json.Unmarshal([]byte(r.Body), v); err != nil {
		t.Fatalf("%s: %v\n%s", r.Request.URL, err, r.Body)
	}
}

func TestConcurrentApprovalsIssueOneCredential(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	reqID := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")

	const approvals = 20
	statuses := make(chan int, approvals)
	var wg sync.WaitGroup
	for range approvals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- sam.apiPost(fmt.Sprintf("/api/v1/requests/%d/approve", reqID), `{}`).StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[http.StatusOK] != 1 || counts[http.StatusConflict] != approvals-1 {
		t.Errorf("statuses of %d concurrent approvals: %v; want one 200 and the rest 409", approvals, counts)
	}
	if n := p.count(`SELECT count(*) FROM credentials`); n != 1 {
		t.Errorf("%d credentials, want 1", n)
	}
	p.wantAudited(portal.ActionCredentialIssued, 1)
}

// TestRequestCreationIsRateLimited: a script looping on new requests is
// slowed down per person, with a message that says to wait.
func TestRequestCreationIsRateLimited(t *testing.T) {
	t.Parallel()
	_, alice, bob, _ := newScene(t)
	limited := 0
	for range 40 {
		r := alice.apiPost("/api/v1/requests", `{"cluster":"awi-ciroh","public_key":"nonsense","justification":"Looping script."}`)
		if r.StatusCode == http.StatusTooManyRequests {
			limited++
			if !strings.Contains(r.Body, "Wait a minute") {
				t.Errorf("429 body: %s", r.Body)
			}
		}
	}
	if limited == 0 {
		t.Error("40 requests in a row were never limited")
	}
	// Another person from the same address is not held back by alice.
	if r := bob.apiPost("/api/v1/requests", `{"cluster":"awi-ciroh","public_key":"nonsense","justification":"One attempt."}`); r.StatusCode == http.StatusTooManyRequests {
		t.Error("bob is limited for alice's requests")
	}
}

func TestStaffManageClusters(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	sam, bob := p.signedIn("sam@2i2c.org"), p.signedIn("bob@example.org")

	form := sam.get("/staff/clusters/new")
	bad := url.Values{"csrf": {csrfToken(t, form.Body)}, "name": {"Bad_Name"}, "prometheus_url": {"https://prometheus.x.2i2c.cloud"},
		"credential_ttl_days": {"90"}, "enabled": {"on"}}
	r := sam.post("/staff/clusters", bad)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "DNS label") || !strings.Contains(r.Body, "prometheus.x.2i2c.cloud") {
		t.Errorf("bad cluster name: %d\n%s", r.StatusCode, r.Body)
	}
	good := url.Values{"csrf": {csrfToken(t, form.Body)}, "name": {"awi-ciroh"}, "display_name": {"AWI-CIROH"},
		"prometheus_url": {"https://prometheus.ciroh.awi.2i2c.cloud"}, "credential_ttl_days": {"30"}, "enabled": {"on"},
		"note": {"Covers every hub."}}
	r = sam.post("/staff/clusters", good)
	if r.Request.URL.Path != "/staff/clusters" || !strings.Contains(r.Body, "prometheus.ciroh.awi.2i2c.cloud") {
		t.Fatalf("add cluster: %d at %s\n%s", r.StatusCode, r.Request.URL, r.Body)
	}
	if r := sam.post("/staff/clusters", good); r.StatusCode != http.StatusConflict {
		t.Errorf("adding the same name twice: %d, want 409", r.StatusCode)
	}
	// A customer's attempt is refused and changes nothing.
	good.Set("csrf", csrfToken(t, bob.get("/dashboard").Body))
	good.Set("name", "sneaky")
	if r := bob.post("/staff/clusters", good); r.StatusCode != http.StatusForbidden {
		t.Errorf("customer adding a cluster: %d, want 403", r.StatusCode)
	}
	// Disable it: no new requests.
	id := p.count(`SELECT id FROM clusters WHERE name = 'awi-ciroh'`)
	sam.submit(fmt.Sprintf("/staff/clusters/%d/edit", id), fmt.Sprintf("/staff/clusters/%d", id), url.Values{"display_name": {"AWI-CIROH"},
		"prometheus_url": {"https://prometheus.ciroh.awi.2i2c.cloud"}, "credential_ttl_days": {"30"}})
	if n := p.count(`SELECT count(*) FROM clusters WHERE enabled`); n != 0 {
		t.Errorf("the cluster is still enabled")
	}
	if n := p.count(`SELECT count(*) FROM clusters`); n != 1 {
		t.Errorf("%d clusters, want 1", n)
	}
	if n := p.count(`SELECT count(*) FROM audit_events WHERE action IN ('cluster.created', 'cluster.updated')`); n != 2 {
		t.Errorf("%d cluster audit events, want 2", n)
	}
}
