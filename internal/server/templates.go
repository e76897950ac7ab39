package server

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"path"
	"strings"
	"time"

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
}

type flash struct {
	Kind    string // info, success, error
	Message string
}

// pages holds one template set per page, each the layout and partials plus
// the page's own file, all parsed once at start-up.
type pages struct {
	sets map[string]*template.Template
}

func parsePages(a *assets) (*pages, error) {
	funcs := template.FuncMap{
		"static": a.url,
		"date":   func(t time.Time) string { return t.UTC().Format("2 Jan 2006") },
		"datetime": func(t time.Time) string {
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"ago":   ago,
		"join":  strings.Join,
		"sub":   func(a, b int) int { return a - b },
		"until": func(t time.Time) string { return ago(time.Now().Add(-time.Until(t))) },
		// soon: within the first reminder's reach, when renewing is due.
		"soon":    func(t time.Time) bool { return time.Until(t) < 14*24*time.Hour },
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
	var buf bytes.Buffer
	if err := set.ExecuteTemplate(&buf, "base", p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
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

// when shows t both ways people read times: roughly how long ago or ahead,
// and exactly, in UTC, in a <time> element machines can read too.
func when(t time.Time) template.HTML {
	rel := ago(t) + " ago"
	if t.After(time.Now()) {
		rel = "in " + ago(time.Now().Add(-time.Until(t)))
	}
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time> <span class="ago">(%s)</span>`,
		t.UTC().Format(time.RFC3339), t.UTC().Format("2006-01-02 15:04 UTC"), t.UTC().Format("2006-01-02 15:04 UTC"), rel))
}

// long shows a long value (a fingerprint, a URL) shortened to its ends, with
// the whole of it a tap away: a phone has no room for it, and a person
// comparing fingerprints reads the ends first. Short values are shown whole.
func long(s string) template.HTML {
	const keep = 10
	r := []rune(s)
	if len(r) <= 2*keep+6 {
		return template.HTML(`<code class="long">` + template.HTMLEscapeString(s) + `</code>`)
	}
	short := string(r[:keep]) + "…" + string(r[len(r)-keep:])
	return template.HTML(`<details class="long"><summary><code>` + template.HTMLEscapeString(short) +
		`</code><span class="visually-hidden"> (show all)</span></summary><code>` + template.HTMLEscapeString(s) + `</code></details>`)
}

// clip shows the first n characters of a long text (an audit event's
// details), the whole of it a tap away: one line per event in a table.
func clip(s string, n int) template.HTML {
	r := []rune(s)
	if len(r) <= n {
		return template.HTML(`<code class="details">` + template.HTMLEscapeString(s) + `</code>`)
	}
	return template.HTML(`<details class="clip"><summary><code>` + template.HTMLEscapeString(string(r[:n])) +
		`…</code></summary><code class="details">` + template.HTMLEscapeString(s) + `</code></details>`)
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
	d := time.Since(t)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}
