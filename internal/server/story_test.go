package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/2i2c-org/credential-portal/internal/agetest"
	"github.com/2i2c-org/credential-portal/internal/outbox"
)

// axeInstall is the command that installs the pinned axe-core the browser
// test injects; `make axe` runs it.
const axeInstall = "make axe (npm install --no-save --prefix .tools/axe axe-core@4.14.1)"

// axeSource is axe-core's script, from AXE_CORE or where `make axe` puts
// it. The test fails, not skips, without it.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AXE_CORE")
	if path == "" {
		path = filepath.Join("..", "..", ".tools", "axe", "node_modules", "axe-core", "axe.min.js")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("axe-core is missing (%v): run %s, or set AXE_CORE to axe.min.js", err, axeInstall)
	}
	return string(b)
}

// person is one browser context (its own cookies) watched for console
// errors, exceptions and CSP violations, which fail the test.
type person struct {
	t    *testing.T
	name string
	ctx  context.Context
	mu   sync.Mutex
	errs []string
	// allowed is a URL whose failed load is expected (an error page).
	allowed string
}

// newPerson opens a new browser context in the browser of parent.
func newPerson(t *testing.T, parent context.Context, name string) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &person{t: t, name: name, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open %s's browser: %v", name, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p.errs = append(p.errs, "console: "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			msg := ev.ExceptionDetails.Text
			if e := ev.ExceptionDetails.Exception; e != nil {
				msg += " " + e.Description
			}
			p.errs = append(p.errs, "exception: "+msg)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError && (p.allowed == "" || ev.Entry.URL != p.allowed) {
				p.errs = append(p.errs, fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("watch %s's browser: %v", name, err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	p.do("set the width", desktop())
	return p
}

func desktop() chromedp.Action[chromedp.Void] { return chromedp.EmulateViewport(1280, 900) }

func phone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile, chromedp.EmulateTouch)
}

// do runs actions, failing the test with what as the step.
func (p *person) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	// A generous deadline per step, so that a step that cannot happen
	// fails with its name rather than at the whole test's deadline.
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, what, err)
	}
}

// text is the visible text of the element sel, a CSS selector.
func (p *person) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("%s: read %s: %v", p.name, sel, err)
	}
	return s
}

// eval evaluates a JavaScript expression in p's page, awaiting a promise.
func eval[T any](p *person, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluate %.80s: %v", p.name, expr, err)
	}
	return v
}

// story checks pages as people see them: at each, axe-core's violations,
// console errors and CSP violations fail the test; at 390×844 the page must
// not scroll sideways; a screenshot is saved at both widths.
type story struct {
	t     *testing.T
	axe   string
	shots string
	pages int
}

// check checks the page p is on, called name.
func (s *story) check(p *person, name string) {
	s.t.Helper()
	s.pages++
	began := time.Now()
	defer func() { s.t.Logf("%s: checked in %s", name, time.Since(began).Round(10*time.Millisecond)) }()
	p.do("wait for "+name, chromedp.WaitReady(chromedp.CSS("body")))
	if !eval[bool](p, `typeof axe !== "undefined"`) {
		eval[bool](p, s.axe+";true")
	}
	raw := eval[string](p, `axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations.map(v =>
		({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))))`)
	var violations []struct {
		ID, Impact, Help string
		Nodes            []string
	}
	if err := json.Unmarshal([]byte(raw), &violations); err != nil {
		s.t.Fatalf("%s: axe result %q: %v", name, raw, err)
	}
	for _, v := range violations {
		s.t.Errorf("%s: axe %s (%s): %s at %v", name, v.ID, v.Impact, v.Help, v.Nodes)
	}
	s.shot(p, name+"-1280")

	p.do("narrow to 390px", phone())
	width := eval[struct{ Scroll, Inner int }](p, `({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})`)
	if width.Scroll > 390 {
		wide := eval[string](p, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 391).slice(0, 5)
			.map(e => e.tagName + "." + e.className).join(", ")`)
		s.t.Errorf("%s at 390px: scrollWidth %d > 390 (inner %d); too wide: %s", name, width.Scroll, width.Inner, wide)
	}
	s.shot(p, name+"-390")
	p.do("back to 1280px", desktop())

	p.mu.Lock()
	for _, e := range p.errs {
		s.t.Errorf("%s (%s): %s", name, p.name, e)
	}
	p.errs, p.allowed = nil, ""
	p.mu.Unlock()
}

func (s *story) shot(p *person, name string) {
	s.t.Helper()
	jpeg, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(70))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err = os.WriteFile(filepath.Join(s.shots, name+".jpg"), jpeg, 0o644); err != nil {
		s.t.Error(err)
	}
}

// visit navigates to path and checks the page.
func (s *story) visit(p *person, base, path, name string) {
	s.t.Helper()
	p.do("open "+path, chromedp.Navigate(base+path))
	s.check(p, name)
}

// TestBrowserWholeStory walks the whole story in headless Chromium with two
// browser contexts: the customer signs in through the development identity
// provider, makes a key with the real age-keygen, requests access and sees
// it pending; staff find it in the queue, with its count in the navigation,
// and approve it through the confirmation; the customer downloads the file,
// decrypts it with the real age, and reports it compromised; staff see it
// flagged, and the customer's pages offer no download. Every page is
// checked with axe-core, for console errors and CSP violations, and at
// 390×844 for sideways scrolling; screenshots of every page at both widths
// go to testdata/screenshots (git-ignored).
func TestBrowserWholeStory(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	ageCmd, keygen := agetest.Commands(t) // the version go.mod requires, as the customer runs it
	shots := filepath.Join("testdata", "screenshots", "story")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	p := newPortal(t, portalOptions{devMail: outbox.NewCapture(50)})
	p.addCluster("awi-ciroh")
	p.addCluster("leap")

	// A generous deadline for the whole story on a busy machine.
	root := storyChromium(t, 10*time.Minute)
	s := &story{t: t, axe: axe, shots: shots}
	started := time.Now()

	// 1. The customer signs in, makes a key, requests access, sees "pending".
	alice := newPerson(t, root, "alice")
	s.visit(alice, p.URL, "/", "home-signed-out")
	alice.do("sign in through the development provider",
		chromedp.Click(chromedp.CSS(`a[href="/login"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(`//a[contains(., "alice@example.org")]`),
	)
	s.check(alice, "dev-idp-chooser")
	alice.do("choose alice", chromedp.Click(`//a[contains(., "alice@example.org")]`), chromedp.WaitVisible(chromedp.CSS(`.site-header .who`)))
	s.check(alice, "dashboard-empty")

	dir := t.TempDir()
	if out, err := exec.Command(keygen, "-o", filepath.Join(dir, "key.txt")).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v\n%s", err, out)
	}
	pub, err := exec.Command(keygen, "-y", filepath.Join(dir, "key.txt")).Output()
	if err != nil {
		t.Fatalf("age-keygen -y: %v", err)
	}
	s.visit(alice, p.URL, "/requests/new", "request-form")
	// A form with problems first: every one is reported.
	alice.allowed = p.URL + "/requests" // the refusal is a 422, which the browser logs
	alice.do("send an empty-ish form",
		chromedp.SendKeys(chromedp.CSS(`#justification`), "short"),
		chromedp.SetAttributeValue(chromedp.CSS(`#justification`), "minlength", "0"),
		chromedp.RemoveAttribute(chromedp.CSS(`#cluster`), "required"),
		chromedp.RemoveAttribute(chromedp.CSS(`#public_key`), "required"),
		chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.error-summary`)),
	)
	focused := eval[string](alice, `document.activeElement.className`)
	if !strings.Contains(focused, "error-summary") {
		t.Errorf("focus after a refused form is on %q, want the error summary", focused)
	}
	s.check(alice, "request-form-errors")
	alice.do("send the request",
		chromedp.SetValue(chromedp.CSS(`#cluster`), "awi-ciroh"),
		chromedp.SetValue(chromedp.CSS(`#public_key`), strings.TrimSpace(string(pub))),
		chromedp.SetValue(chromedp.CSS(`#justification`), "Grafana dashboards for our steering committee."),
		chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash-success`)),
	)
	if main := alice.text("main"); !strings.Contains(main, "pending") {
		t.Errorf("after sending, the request page does not say pending:\n%s", main)
	}
	s.check(alice, "request-pending")
	reqPath := eval[string](alice, `location.pathname`)
	s.visit(alice, p.URL, reqPath+"/cancel", "confirm-cancel")

	// 2. Staff sign in onto the queue, with the count in the navigation,
	// and approve through the confirmation.
	sam := newPerson(t, root, "sam")
	sam.do("sign in as staff", chromedp.Navigate(p.URL+"/login?login_hint=sam@2i2c.org"), chromedp.WaitVisible(chromedp.CSS(`.queue-item`)))
	landed := eval[string](sam, `location.pathname`)
	if landed != "/staff/requests" {
		t.Errorf("staff landed on %s, want the queue", landed)
	}
	if nav := sam.text(`nav a[href="/staff/requests"]`); nav != "Queue (1)" {
		t.Errorf("the navigation says %q, want Queue (1)", nav)
	}
	s.check(sam, "staff-queue")
	sam.do("open the approval", chromedp.Click(chromedp.CSS(`.queue-item a[href$="/approve"]`)), chromedp.WaitVisible(chromedp.CSS(`form[action$="/approve"]`)))
	s.check(sam, "confirm-approve")
	sam.do("approve", chromedp.Click(chromedp.CSS(`form[action$="/approve"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.flash-success`)))
	if msg := sam.text(".flash-success"); !strings.Contains(msg, "approved") {
		t.Errorf("after approving: %q", msg)
	}
	s.check(sam, "staff-queue-empty")

	// 3. The customer downloads the file, which the real age decrypts,
	// then reports the credential compromised.
	s.visit(alice, p.URL, "/dashboard", "dashboard-active")
	if d := alice.text("main"); !strings.Contains(d, "not downloaded yet") {
		t.Errorf("the dashboard does not mark the new credential not downloaded yet:\n%s", d)
	}
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(alice.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
		BrowserContextID: chromedp.FromContext(alice.ctx).BrowserContextID}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	alice.do("download", chromedp.Click(chromedp.CSS(`a[href$="credentials.txt.age"]`)))
	file := filepath.Join(downloads, "credentials.txt.age")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if st, err := os.Stat(file); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no credentials.txt.age in %s after 30s", downloads)
		}
	}
	out := filepath.Join(dir, "credentials.txt")
	cmd := exec.Command(ageCmd, "--decrypt", "-i", "key.txt", "-o", out, file)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("age --decrypt: %v\n%s", err, b)
	}
	plain, _ := os.ReadFile(out)
	if !strings.Contains(string(plain), "Username:") || !strings.Contains(string(plain), "basicAuthUser:") {
		t.Errorf("the decrypted file:\n%s", plain)
	}

	alice.do("open the credential", chromedp.Navigate(p.URL+"/dashboard"), chromedp.Click(`//table[contains(@class,"credentials")]//a[starts-with(., "Details")]`),
		chromedp.WaitVisible(chromedp.CSS(`a[href$="/report-compromised"]`)))
	s.check(alice, "credential-active")
	credPath := eval[string](alice, `location.pathname`)
	s.visit(alice, p.URL, credPath+"/revoke", "confirm-revoke")
	alice.do("open the report", chromedp.Navigate(p.URL+credPath), chromedp.Click(chromedp.CSS(`a[href$="/report-compromised"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/report-compromised"]`)))
	s.check(alice, "confirm-compromised")
	alice.do("report compromised",
		chromedp.SendKeys(chromedp.CSS(`#details`), "left it in a public notebook"),
		chromedp.Click(chromedp.CSS(`form[action$="/report-compromised"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash-success`)))
	s.check(alice, "credential-compromised")

	// 4. Staff see it flagged; the customer's pages offer no download.
	s.visit(sam, p.URL, "/staff/requests", "staff-queue-compromised")
	if q := sam.text("main"); !strings.Contains(q, "reported compromised this week") {
		t.Errorf("the queue does not flag the compromise:\n%s", q)
	}
	s.visit(sam, p.URL, "/staff/revocations", "staff-revocations")
	if r := sam.text("main"); !strings.Contains(r, "compromised") {
		t.Errorf("the revocations do not flag it:\n%s", r)
	}
	for _, path := range []string{credPath, reqPath, "/dashboard"} {
		alice.do("open "+path, chromedp.Navigate(p.URL+path), chromedp.WaitReady(chromedp.CSS("main")))
		if links := eval[int](alice, `document.querySelectorAll('a[href$="credentials.txt.age"]').length`); links != 0 {
			t.Errorf("%s offers a download of the compromised credential", path)
		}
	}
	s.visit(alice, p.URL, reqPath, "request-compromised")
	s.visit(alice, p.URL, "/dashboard", "dashboard-past")
	if b := alice.text("main"); !strings.Contains(b, "Past credentials") || !strings.Contains(b, "compromised") {
		t.Errorf("the dashboard does not show the compromised credential as past:\n%s", b)
	}

	// Every other page, at both widths.
	s.visit(alice, p.URL, "/sessions", "sessions")
	alice.allowed = p.URL + "/requests/999999"
	s.visit(alice, p.URL, "/requests/999999", "error-not-found")
	cluster := p.count(`SELECT id FROM clusters WHERE name = 'awi-ciroh'`)
	for _, pg := range []struct{ path, name string }{
		{"/staff/clusters", "staff-clusters"},
		{"/staff/clusters/new", "staff-cluster-new"},
		{fmt.Sprintf("/staff/clusters/%d/edit", cluster), "staff-cluster-edit"},
		{fmt.Sprintf("/staff/clusters/%d/sync-token", cluster), "confirm-sync-token"},
		{"/staff/audit", "staff-audit"},
		{"/staff/people", "staff-people"},
		{"/staff/notifications", "staff-notifications"},
		{"/dev/mail", "dev-mail"},
		{"/sessions", "staff-sessions"},
	} {
		s.visit(sam, p.URL, pg.path, pg.name)
	}
	sam.do("rotate the sync token", chromedp.Navigate(p.URL+fmt.Sprintf("/staff/clusters/%d/sync-token", cluster)), chromedp.Click(chromedp.CSS(`form[action$="/sync-token"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#sync-token`)))
	s.check(sam, "staff-sync-token")
	if !eval[bool](sam, `!document.querySelector('button[data-copy="sync-token"]').hidden`) {
		t.Error("the sync token's copy button is not shown")
	}
	sam.do("reload the token page", chromedp.Reload(), chromedp.WaitReady(chromedp.CSS("main")))
	s.check(sam, "staff-sync-token-reloaded")
	p.wantAudited("cluster.sync_token_rotated", 1)

	t.Logf("%d pages checked at 1280 and 390 pixels in %s; screenshots in %s", s.pages, time.Since(started).Round(time.Second), shots)
}

// chromiumPath is Chromium's path, from CHROMIUM or the PATH. The test
// fails, not skips, when it is missing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("CHROMIUM"); bin != "" {
		return bin
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium for the browser tests: install it (Debian: apt-get install chromium) or set CHROMIUM to its path")
	return ""
}

// storyChromium starts headless Chromium with a fresh profile, for tests
// that open browser contexts of their own on it, and ends it with the test
// or after deadline.
func storyChromium(t *testing.T, deadline time.Duration) context.Context {
	t.Helper()
	bin := chromiumPath(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true))...)
	t.Cleanup(cancelAlloc)
	root, cancelRoot := chromedp.NewContext(actx)
	t.Cleanup(cancelRoot)
	root, cancelDeadline := context.WithTimeout(root, deadline)
	t.Cleanup(cancelDeadline)
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("start Chromium (%s): %v", bin, err)
	}
	return root
}
