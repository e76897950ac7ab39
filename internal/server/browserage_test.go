package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/2i2c-org/credential-portal/internal/agetest"
	"github.com/2i2c-org/credential-portal/internal/issue"
)

// TestAgeBundleMatchesItsRecord proves that web/static/age.js is the file
// `make agebundle` built from the pinned npm packages: its SHA-256 and the
// versions are the ones web/agebundle/BUNDLE records, and package.json and
// package-lock.json pin those versions.
func TestAgeBundleMatchesItsRecord(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "web")
	record, err := os.ReadFile(filepath.Join(dir, "agebundle", "BUNDLE"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for line := range strings.Lines(string(record)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		want[k] = v
	}
	bundle, err := os.ReadFile(filepath.Join(dir, "static", "age.js"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256Hex(bundle); got != want["sha256"] {
		t.Errorf("web/static/age.js has SHA-256 %s, BUNDLE records %s: run make agebundle and commit both", got, want["sha256"])
	}
	if want["age-encryption"] != "0.3.1" || want["esbuild"] != "0.28.2" {
		t.Errorf("BUNDLE records %v, want age-encryption 0.3.1 and esbuild 0.28.2", want)
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(dir, "agebundle", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, pkg := range []string{"age-encryption", "esbuild"} {
			pinned := regexp.MustCompile(`"(node_modules/)?` + pkg + `"\s*:\s*(\{\s*"version"\s*:\s*)?"` + regexp.QuoteMeta(want[pkg]) + `"`)
			if !pinned.Match(b) {
				t.Errorf("%s does not pin %s %s", f, pkg, want[pkg])
			}
		}
	}
	for _, bad := range []string{"eval(", "new Function", "WebAssembly", "https://"} {
		if strings.Contains(string(bundle), bad) {
			t.Errorf("the bundle contains %q, which the strict CSP forbids or which loads code from elsewhere", bad)
		}
	}
}

// ageBrowser starts headless Chromium for the age tests, with a generous
// deadline for a busy machine.
func ageBrowser(t *testing.T) context.Context {
	t.Helper()
	return storyChromium(t, 5*time.Minute)
}

// allowDownloads saves p's downloads into a new folder, which it returns.
func allowDownloads(t *testing.T, p *person) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(p.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir,
		BrowserContextID: chromedp.FromContext(p.ctx).BrowserContextID}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	return dir
}

// waitFile waits for a complete, non-empty file.
func waitFile(t *testing.T, path string) []byte {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s", path)
		}
	}
}

// keygenFormat is key.txt as age-keygen writes it.
var keygenFormat = regexp.MustCompile(`\A# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)\n# public key: (age1[02-9ac-hj-np-z]{58})\nAGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}\n\z`)

// makeKeyInPage makes a key on the request form with the page's button and
// returns key.txt as downloaded and the public key the form was given.
func makeKeyInPage(t *testing.T, p *person, base, downloads string) (keyTxt, public string) {
	t.Helper()
	p.do("make a key in the browser", chromedp.Navigate(base+"/requests/new"),
		chromedp.Click(chromedp.CSS(`#browser-key-make`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#browser-key-download`)))
	p.do("download key.txt", chromedp.Click(chromedp.CSS(`#browser-key-download`)))
	keyTxt = string(waitFile(t, filepath.Join(downloads, "key.txt")))
	m := keygenFormat.FindStringSubmatch(keyTxt)
	if m == nil {
		t.Fatalf("key.txt is not in age-keygen's format:\n%s", keyTxt)
	}
	public = eval[string](p, `document.getElementById("public_key").value`)
	if public != m[2] {
		t.Errorf("the form holds the public key %q, key.txt says %q", public, m[2])
	}
	return keyTxt, public
}

// signInBrowser signs p in through the development provider.
func signInBrowser(p *person, base, email string) {
	p.do("sign in as "+email, chromedp.Navigate(base+"/login?login_hint="+email), chromedp.WaitVisible(chromedp.CSS(`.site-header .who`)))
}

// openInPage opens the credential page path with the key file keyPath,
// returning what the page shows.
func openInPage(t *testing.T, p *person, base, path, keyPath string) (url, username, password string) {
	t.Helper()
	p.do("open the credential in the browser", chromedp.Navigate(base+path),
		chromedp.WaitVisible(chromedp.CSS(`#browser-open`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#browser-open-key`), []string{keyPath}),
		chromedp.Click(chromedp.CSS(`#browser-open-form button[type=submit]`)))
	// The page says when it is done, opened or not.
	status := eval[string](p, `new Promise(done => { const s = document.getElementById("browser-open-status");
		const check = () => s.textContent && s.textContent !== "Opening…" ? done(s.textContent) : setTimeout(check, 50); check(); })`)
	if !strings.HasPrefix(status, "Opened") {
		t.Fatalf("%s: the page did not open the credential: %s", p.name, status)
	}
	return p.text("#open-url"), p.text("#open-username"), p.text("#open-password")
}

// TestBrowserAgeWholeStory is the customer who has never used a terminal:
// in headless Chromium she makes a key in the page and downloads key.txt,
// in age-keygen's exact format; the form refuses to go until she confirms
// she saved it; staff approve; she opens the credential in the page with
// key.txt, sees the password (which verifies against the stored bcrypt
// hash) and hides it, and leaving clears it too. The same key.txt decrypts
// the downloaded file with the real age command, and no request the
// browser made carries AGE-SECRET-KEY in its URL or body. Pages are checked
// with axe-core, for console errors and CSP violations, and at 390 pixels.
func TestBrowserAgeWholeStory(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	ageCmd, _ := agetest.Commands(t)
	shots := filepath.Join("testdata", "screenshots", "browserage")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	p := newPortal(t, portalOptions{})
	p.addCluster("awi-ciroh")
	root := ageBrowser(t)
	s := &story{t: t, axe: axe, shots: shots}

	alice := newPerson(t, root, "alice")
	var (
		mu   sync.Mutex
		sent []string // every request's URL and body
	)
	err := chromedp.Listen(alice.ctx, func(ev any) {
		if ev, ok := ev.(*network.EventRequestWillBeSent); ok {
			var body strings.Builder
			for _, e := range ev.Request.PostDataEntries {
				body.Write(e.Bytes)
			}
			mu.Lock()
			sent = append(sent, ev.Request.Method+" "+ev.Request.URL+"\n"+body.String())
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(alice.ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("watch the network: %v", err)
	}
	downloads := allowDownloads(t, alice)
	signInBrowser(alice, p.URL, "alice@example.org")

	keyTxt, public := makeKeyInPage(t, alice, p.URL, downloads)
	keyPath := filepath.Join(downloads, "key.txt")
	keygenMs := eval[string](alice, `document.getElementById("browser-key").dataset.keygenMs`)
	s.check(alice, "request-form-key-made")

	// Not sent until she confirms she saved key.txt.
	alice.do("fill in the form", chromedp.SetValue(chromedp.CSS(`#cluster`), "awi-ciroh"),
		chromedp.SetValue(chromedp.CSS(`#justification`), "Grafana dashboards for our steering committee."),
		chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type=submit]`)))
	if eval[bool](alice, `document.querySelector('form[action="/requests"]').checkValidity()`) {
		t.Error("the form is valid before she confirmed she saved key.txt")
	}
	if n := p.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Fatalf("the request was sent before she confirmed she saved key.txt (%d requests)", n)
	}
	alice.do("confirm and send", chromedp.Click(chromedp.CSS(`#browser-key-saved`)),
		chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash-success`)))
	var reqID int64
	fmt.Sscanf(eval[string](alice, `location.pathname`), "/requests/%d", &reqID)
	if got := p.count(`SELECT count(*) FROM requests WHERE id = $1 AND public_key = $2`, reqID, public); got != 1 {
		t.Fatalf("request %d does not hold the key made in the page", reqID)
	}

	p.signedIn("sam@2i2c.org").approve(reqID, "")
	credID := p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID)
	credPath := fmt.Sprintf("/credentials/%d", credID)

	// The command line leads; the browser way is beside it, with the trade-off.
	alice.do("open the credential page", chromedp.Navigate(p.URL+credPath), chromedp.WaitVisible(chromedp.CSS(`#browser-open`)))
	page := alice.text("main")
	if strings.Index(page, "age --decrypt") < 0 || strings.Index(page, "age --decrypt") > strings.Index(page, "Or open it in this browser") {
		t.Errorf("the credential page does not lead with the age command:\n%s", page)
	}
	if !strings.Contains(page, "never uploaded") || !strings.Contains(page, "could change this page's code") {
		t.Errorf("the credential page does not say the key stays here, or the trade-off:\n%s", page)
	}
	s.check(alice, "credential-browser-open")

	url, username, password := openInPage(t, alice, p.URL, credPath, keyPath)
	decryptMs := eval[string](alice, `document.getElementById("browser-open").dataset.decryptMs`)
	var hash string
	if err := p.Store.Pool().QueryRow(context.Background(), `SELECT username, password_hash FROM credentials WHERE id = $1`, credID).Scan(new(string), &hash); err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		t.Errorf("the password the page shows (%d characters) does not verify against the stored hash: %v", len(password), err)
	}
	if !strings.HasPrefix(url, "https://") || username == "" {
		t.Errorf("the page shows URL %q and username %q", url, username)
	}
	if !strings.Contains(alice.text("#browser-open-result"), "Save & test") {
		t.Error("the opened credential has no Grafana steps")
	}
	if !eval[bool](alice, `!document.querySelector('button[data-copy="open-password"]').hidden`) {
		t.Error("the password has no copy button")
	}
	s.check(alice, "credential-opened")

	alice.do("hide", chromedp.Click(chromedp.CSS(`#browser-open-hide`)))
	if got := eval[string](alice, `document.getElementById("browser-open-result").innerText + document.getElementById("open-password").textContent`); strings.Contains(got, password) {
		t.Error("the password is still in the page after Hide")
	}
	// Leaving: the page clears on pagehide, which is what a browser keeping
	// the page in its back-forward cache fires. The portal's pages are
	// no-store, so Chromium reloads them on Back; both are checked.
	openInPage(t, alice, p.URL, credPath, keyPath)
	if got := eval[string](alice, `window.dispatchEvent(new PageTransitionEvent("pagehide", {persisted: true}));
		document.getElementById("open-password").textContent`); got != "" {
		t.Error("the password is still in the page after pagehide")
	}
	openInPage(t, alice, p.URL, credPath, keyPath)
	alice.do("leave and come back", chromedp.Navigate(p.URL+"/dashboard"), chromedp.WaitReady(chromedp.CSS("main")),
		chromedp.NavigateBack(), chromedp.WaitReady(chromedp.CSS("#browser-open")))
	if got := eval[string](alice, `document.getElementById("open-password").textContent`); got != "" {
		t.Error("the password is still in the page after leaving it and coming back")
	}

	// The same key.txt opens the downloaded file with the real age.
	alice.do("download", chromedp.Click(chromedp.CSS(`a[href$="credentials.txt.age"]`)))
	file := filepath.Join(downloads, "credentials.txt.age")
	waitFile(t, file)
	out, err := exec.Command(ageCmd, "--decrypt", "-i", keyPath, file).Output()
	if err != nil {
		t.Fatalf("age --decrypt with the page's key.txt: %v", err)
	}
	if !strings.Contains(string(out), "Password:        "+password+"\n") {
		t.Error("age --decrypt gives another password than the page showed")
	}

	mu.Lock()
	defer mu.Unlock()
	secret := strings.TrimSpace(keyTxt[strings.Index(keyTxt, "AGE-SECRET-KEY-"):])
	posts := 0
	for _, r := range sent {
		if strings.Contains(r, "AGE-SECRET-KEY") || strings.Contains(r, secret) || strings.Contains(r, strings.ToLower(secret)) {
			t.Errorf("a request carried the secret key:\n%.200s", r)
		}
		if strings.HasPrefix(r, "POST ") {
			posts++
		}
	}
	if posts == 0 {
		t.Error("the network log saw no POST, so it proves nothing")
	}
	t.Logf("age.js %d bytes; key made in %s ms, credential opened in %s ms; %d requests, none with the secret key",
		len(mustRead(t, filepath.Join("..", "..", "web", "static", "age.js"))), keygenMs, decryptMs, len(sent))
}

// TestGoEncryptsToKeyMadeInPage proves that a key made in the page is a
// real age key: the Go library encrypts to its public key, and both the Go
// library (reading key.txt) and the page decrypt the result.
func TestGoEncryptsToKeyMadeInPage(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	p.addCluster("awi-ciroh")
	alice := newPerson(t, ageBrowser(t), "alice")
	downloads := allowDownloads(t, alice)
	signInBrowser(alice, p.URL, "alice@example.org")
	keyTxt, public := makeKeyInPage(t, alice, p.URL, downloads)

	r, err := issue.ParseRecipient(public)
	if err != nil {
		t.Fatalf("the portal refuses the page's public key: %v", err)
	}
	sealed, err := issue.Encrypt([]byte("made in Go\n"), r)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bufio.NewReader(strings.NewReader(keyTxt)))
	if err != nil {
		t.Fatalf("Go cannot read the page's key.txt: %v", err)
	}
	if got := decryptWith(t, sealed, ids[0]); got != "made in Go\n" {
		t.Errorf("Go decrypts %q", got)
	}
	secret := strings.TrimSpace(keyTxt[strings.Index(keyTxt, "AGE-SECRET-KEY-"):])
	got := eval[string](alice, fmt.Sprintf(`import("/static/age.js").then(age => { const d = new age.Decrypter(); d.addIdentity(%q);
		return d.decrypt(Uint8Array.from(atob(%q), c => c.charCodeAt(0)), "text"); })`, secret, base64.StdEncoding.EncodeToString(sealed)))
	if got != "made in Go\n" {
		t.Errorf("the page decrypts %q", got)
	}
}

// TestPageOpensWhatThePortalIssuedForAgeKeygenKey is the reverse: a key made
// with the real age-keygen, a credential issued by the portal to it, and the
// page opens it with that key.txt, showing what the Go library decrypts.
func TestPageOpensWhatThePortalIssuedForAgeKeygenKey(t *testing.T) {
	t.Parallel()
	_, keygen := agetest.Commands(t)
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "key.txt")
	if out, err := exec.Command(keygen, "-o", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v\n%s", err, out)
	}
	pub, err := exec.Command(keygen, "-y", keyPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	keyFile, _ := os.Open(keyPath)
	ids, err := age.ParseIdentities(keyFile)
	keyFile.Close()
	if err != nil {
		t.Fatal(err)
	}

	p := newPortal(t, portalOptions{})
	p.addCluster("awi-ciroh")
	customer := p.signedIn("alice@example.org")
	reqID := customer.requestAccess("awi-ciroh", strings.TrimSpace(string(pub)), "Dashboards for the research team.")
	p.signedIn("sam@2i2c.org").approve(reqID, "")
	sealed, _ := customer.download(reqID)
	plain := decryptWith(t, sealed, ids[0])
	credID := p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID)

	alice := newPerson(t, ageBrowser(t), "alice")
	signInBrowser(alice, p.URL, "alice@example.org")
	url, username, password := openInPage(t, alice, p.URL, fmt.Sprintf("/credentials/%d", credID), keyPath)
	for label, v := range map[string]string{"Prometheus URL": url, "Username": username, "Password": password} {
		if v == "" || !regexp.MustCompile(`(?m)^`+label+`: +`+regexp.QuoteMeta(v)+`$`).MatchString(plain) {
			t.Errorf("the page shows %s %q, which is not in credentials.txt", label, v)
		}
	}
}

// TestCredentialPageSendsSSHKeysToTheCommand proves that a credential
// encrypted to an SSH key offers no opening in the browser, which would mean
// handing the page an SSH private key, and says to use age instead.
func TestCredentialPageSendsSSHKeysToTheCommand(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	reqID := alice.requestAccess("awi-ciroh", sshEd25519Key(t), "Dashboards for the research team.")
	sam.approve(reqID, "")
	page := alice.get(fmt.Sprintf("/credentials/%d", p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID)))
	if strings.Contains(page.Body, `id="browser-open"`) || strings.Contains(page.Body, "agepage.js") {
		t.Error("the page offers to open an SSH-encrypted credential in the browser")
	}
	if !strings.Contains(page.Body, "not read in the browser") {
		t.Errorf("the page does not say to use the age command for SSH keys:\n%s", page.Body)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
