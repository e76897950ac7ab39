package server

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
	"github.com/2i2c-org/credential-portal/web"
)

// page is what every template sees; Data is the page's own.
type page struct {
	Title     string
	User      *portal.User
	CSRF      string
	Dev       bool
	Flash     *flash
	RequestID string
	// Staff is what the staff navigation counts, on a staff member's pages
	// only (nil on a customer's).
	Staff *workflow.StaffSummary
	// DevMail is set when development mail is captured; DevMailCount is
	// how many messages it holds.
	DevMail      bool
	DevMailCount int
	Data         any
	// Header is the site's header as rendered from the fields above
	// (headerRow), by render.
	Header template.HTML
}

// headerRow is what the site's header shows, the same on every page of a
// session: rendered once for its values through the row cache.
type headerRow struct {
	Dev, DevMail bool
	DevMailCount int
	SignedIn     bool
	Staff        bool   // the staff navigation
	Counted      bool   // with the staff counts, known
	Pending      int64  // requests waiting
	Failing      int64  // messages failing
	Name, Role   string // of the person signed in
	CSRF         string // for the sign-out form
}

func newHeaderRow(p *page) headerRow {
	h := headerRow{Dev: p.Dev, DevMail: p.DevMail, DevMailCount: p.DevMailCount}
	if p.User != nil {
		h.SignedIn, h.Staff, h.Name, h.Role, h.CSRF = true, p.User.IsStaff(), p.User.DisplayName(), string(p.User.Role), p.CSRF
	}
	if h.Staff && p.Staff != nil {
		h.Counted, h.Pending, h.Failing = true, p.Staff.Pending, p.Staff.Failing
	}
	return h
}

type flash struct {
	Kind    string // info, success, error
	Message string
}

// pages holds one template set per page, each the layout and partials plus
// the page's own file, all parsed once at start-up.
type pages struct {
	sets map[string]*template.Template
	// buffers are the buffers pages are rendered into, kept from one page
	// to the next: a 40 KB page grown from nothing allocates three times
	// its size, which the collector then has to sweep.
	buffers sync.Pool
}

// maxKeptBuffer is the largest buffer kept for the next page.
const maxKeptBuffer = 1 << 20

func parsePages(a *assets) (*pages, error) {
	funcs := template.FuncMap{
		"static": a.url,
		"date":   func(t time.Time) string { return t.UTC().Format("2 Jan 2006") },
		"datetime": func(t time.Time) string {
			return t.UTC().Format(minuteLayout)
		},
		"ago":     ago,
		"join":    strings.Join,
		"sub":     func(a, b int) int { return a - b },
		"until":   until,
		"soon":    soon,
		"deref":   func(p *int64) int64 { return *p },
		"derefTS": func(p *time.Time) time.Time { return *p },
		// Of a refusal (a *portal.Error): the message beside a form's field,
		// and the page of the object it points at.
		"fieldError": fieldError,
		// fieldProblem is fieldError among all of a form's problems.
		"fieldProblem": fieldProblem,
		"linkURL":      linkURL,
		"when":         when,
		"long":         long,
		"clip":         clip,
		"revokedBy":    revokedBy,
		"keyFile":      keyFile,
		// requestStatus and credentialState are a status's badge.
		"requestStatus":   func(s portal.RequestStatus) template.HTML { return badge(string(s)) },
		"credentialState": func(s portal.CredentialState) template.HTML { return badge(string(s)) },
		// dict passes several values to a partial: dict "C" cred "U" user.
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict: odd number of arguments")
			}
			m := make(map[string]any, len(kv)/2)
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
	}
	base, err := template.New("").Funcs(funcs).ParseFS(web.FS, "templates/layout.html", "templates/partials/*.html")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	files, err := fs.Glob(web.FS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	p := &pages{sets: make(map[string]*template.Template)}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		set, err := template.Must(base.Clone()).ParseFS(web.FS, f)
		if err != nil {
			return nil, fmt.Errorf("templates: %s: %w", f, err)
		}
		if set.Lookup("content") == nil {
			return nil, fmt.Errorf("templates: %s defines no content", f)
		}
		p.sets[name] = set
	}
	return p, nil
}

// render writes the page called name with status. The page is rendered to a
// buffer first, so a template error becomes a clean 500, not half a page.
func (s *Server) render(c echo.Context, status int, name string, p page) error {
	set, ok := s.pages.sets[name]
	if !ok {
		return fmt.Errorf("render: no page %q", name)
	}
	p.Dev = s.cfg.Dev
	p.RequestID = applog.RequestID(c.Request().Context())
	if p.User == nil {
		p.User = currentUser(c)
	}
	// A server error's cause may be the database: its page does without.
	if p.Staff == nil && p.User.IsStaff() && status < 500 {
		p.Staff = s.staffSummary(c)
	}
	if s.cfg.DevMail != nil {
		p.DevMail, p.DevMailCount = true, len(s.cfg.DevMail.Messages())
	}
	if p.CSRF == "" {
		p.CSRF, _ = c.Get(csrfContextKey).(string)
	}
	if p.Flash == nil && s.sessions != nil && c.Get(sessionLoaded) != nil {
		ctx := c.Request().Context()
		if msg := s.sessions.PopString(ctx, sessFlash); msg != "" {
			p.Flash = &flash{Kind: s.sessions.PopString(ctx, sessFlashKind), Message: msg}
		}
	}
	header, err := renderRow(s, name, "header", newHeaderRow(&p))
	if err != nil {
		return err
	}
	p.Header = header
	buf, _ := s.pages.buffers.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= maxKeptBuffer {
			buf.Reset()
			s.pages.buffers.Put(buf)
		}
	}()
	if err := set.ExecuteTemplate(buf, "base", p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	// Its length, known: the answer goes out whole, not in chunks.
	h.Set(echo.HeaderContentLength, strconv.Itoa(buf.Len()))
	// Written before the buffer goes back: HTMLBlob copies it out.
	return c.HTMLBlob(status, buf.Bytes())
}

// staffSummary is what the staff navigation counts, or nil when it cannot
// be had. The counts adorn the page; they do not decide it: a failure here
// is logged and the page shown with the navigation's plain links.
func (s *Server) staffSummary(c echo.Context) *workflow.StaffSummary {
	ctx := c.Request().Context()
	sum, err := s.wf.StaffSummary(ctx, s.actor(c))
	if err != nil {
		s.log.ErrorContext(ctx, "counting for the staff navigation", "error", err.Error())
		return nil
	}
	return sum
}

// minuteLayout is how a page prints an exact time: to the minute, in UTC.
const minuteLayout = "2006-01-02 15:04 UTC"

// when shows t both ways people read times: roughly how long ago or ahead,
// and exactly, in UTC, in a <time> element machines can read too. A page of
// lists prints it a hundred times, so it appends into one buffer rather than
// formatting each piece apart.
func when(t time.Time) template.HTML {
	now, u := time.Now(), t.UTC()
	b := make([]byte, 0, 112)
	b = append(b, `<time datetime="`...)
	b = u.AppendFormat(b, time.RFC3339)
	b = append(b, `" title="`...)
	start := len(b)
	b = u.AppendFormat(b, minuteLayout)
	end := len(b)
	b = append(b, `">`...)
	b = append(b, b[start:end]...) // the title, again as the text
	b = append(b, `</time> <span class="ago">(`...)
	if u.After(now) {
		b = appendSpan(append(b, "in "...), u.Sub(now))
	} else {
		b = append(appendSpan(b, now.Sub(u)), " ago"...)
	}
	return template.HTML(append(b, ")</span>"...))
}

// long shows a long value (a fingerprint, a URL) shortened to its ends, with
// the whole of it a tap away: a phone has no room for it, and a person
// comparing fingerprints reads the ends first. Short values are shown whole.
func long(s string) template.HTML {
	const keep = 10
	head, tail, cut := ends(s, keep, 2*keep+6)
	if !cut {
		return template.HTML(`<code class="long">` + template.HTMLEscapeString(s) + `</code>`)
	}
	return template.HTML(`<details class="long"><summary><code>` + template.HTMLEscapeString(head) + "…" + template.HTMLEscapeString(tail) +
		`</code><span class="visually-hidden"> (show all)</span></summary><code>` + template.HTMLEscapeString(s) + `</code></details>`)
}

// ends is the first and last keep characters of s when s is longer than
// most characters (cut), counting characters as []rune does. Fingerprints,
// URLs and audit details are ASCII, which needs no conversion: a []rune of
// the whole of s is made only for other text, whose invalid bytes it turns
// into U+FFFD as the page has always shown them.
func ends(s string, keep, most int) (head, tail string, cut bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		if len(s) <= most {
			return "", "", false
		}
		return s[:keep], s[len(s)-keep:], true
	}
	r := []rune(s)
	if len(r) <= most {
		return "", "", false
	}
	return string(r[:keep]), string(r[len(r)-keep:]), true
}

// clip shows the first n characters of a long text (an audit event's
// details), the whole of it a tap away: one line per event in a table.
func clip(s string, n int) template.HTML {
	head, _, cut := ends(s, n, n)
	if !cut {
		return template.HTML(`<code class="details">` + template.HTMLEscapeString(s) + `</code>`)
	}
	return template.HTML(`<details class="clip"><summary><code>` + template.HTMLEscapeString(head) +
		`…</code></summary><code class="details">` + template.HTMLEscapeString(s) + `</code></details>`)
}

// badge is a request's status or a credential's state as a badge, styled by
// its name: <span class="status status-active">active</span>. Statuses are
// the domain's own lowercase words, which need no escaping; anything else is
// escaped all the same.
func badge(s string) template.HTML {
	plain := true
	for i := 0; i < len(s); i++ {
		if (s[i] < 'a' || s[i] > 'z') && s[i] != '-' {
			plain = false
			break
		}
	}
	if !plain {
		s = template.HTMLEscapeString(s)
	}
	return template.HTML(`<span class="status status-` + s + `">` + s + `</span>`)
}

// revokedBy names who revoked c, as viewer may know it: the owner themself,
// 2i2c staff (whose names customers are not shown), or the portal.
func revokedBy(c *portal.Credential, viewer *portal.User) string {
	switch {
	case c.RevokedBy == nil:
		return "the portal"
	case *c.RevokedBy == c.UserID && viewer != nil && viewer.ID == c.UserID:
		return "you"
	case *c.RevokedBy == c.UserID:
		return "its owner"
	}
	return "2i2c staff"
}

// keyFile is the private key file the decrypt command reads for a key of
// type t: where age-keygen or ssh-keygen put it by default.
func keyFile(t portal.KeyType) string {
	switch t {
	case portal.KeySSHEd25519:
		return "~/.ssh/id_ed25519"
	case portal.KeySSHRSA:
		return "~/.ssh/id_rsa"
	}
	return "key.txt"
}

// ago says roughly how long ago t was: "4 minutes", "3 hours", "12 days".
func ago(t time.Time) string {
	return string(appendSpan(make([]byte, 0, 16), time.Since(t)))
}

// until says roughly how long until t: "4 minutes", "3 hours", "12 days".
func until(t time.Time) string {
	return string(appendSpan(make([]byte, 0, 16), time.Until(t)))
}

// soon says whether t is within the first reminder's reach, when renewing
// a credential that expires at t is due.
func soon(t time.Time) bool { return time.Until(t) < 14*24*time.Hour }

// appendSpan appends d said roughly, as ago says it, to b.
func appendSpan(b []byte, d time.Duration) []byte {
	n, unit := int64(d/(24*time.Hour)), "day"
	switch {
	case d < time.Minute:
		return append(b, "less than a minute"...)
	case d < time.Hour:
		n, unit = int64(d/time.Minute), "minute"
	case d < 48*time.Hour:
		n, unit = int64(d/time.Hour), "hour"
	}
	b = append(strconv.AppendInt(b, n, 10), ' ')
	b = append(b, unit...)
	if n != 1 {
		b = append(b, 's')
	}
	return b
}
