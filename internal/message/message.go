// Package message composes what the portal tells people: for each event, a
// subject, a plain-text body, an HTML body and, for staff, the text of a
// chat webhook post, from the templates embedded here. It says what
// happened, what to do next, and links to the exact page. It is never given
// a secret, so none can reach a message.
package message

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// Facts are what a message may say about what happened; each event's
// templates use the ones that concern it. None is a secret.
type Facts struct {
	Event portal.Action
	// Link is the absolute URL of the page the message is about.
	Link string
	// NewRequestLink is where to ask again, for messages that end a request.
	NewRequestLink string

	Cluster      string
	RequestID    int64
	CredentialID int64
	Renews       int64  // the credential a request renews; 0 for none
	Customer     string // the person the request or credential is for, "Name <email>"
	Actor        string // who acted: a staff member's address, or the portal
	// Justification is the customer's reason for asking, quoted to staff.
	Justification string
	KeyType       string
	// Note is a decision's note; Reason a revocation's reason.
	Note     string
	Reason   string
	Username string
	// ExpiresAt is when the credential expires, DaysLeft how many days are
	// left before it does.
	ExpiresAt time.Time
	DaysLeft  int
	// Since is when a request was made.
	Since time.Time
	// Rule is the policy rule that approved a request at once, as a person
	// reads it ("verified @earthscope.org address"); "" when staff did.
	Rule string
	// Approvals a request has, of the ApprovalsRequired its cluster asks for.
	Approvals         int
	ApprovalsRequired int
}

// Composed is one message, rendered.
type Composed struct {
	Subject string
	Text    string
	HTML    string
	Webhook string // "" for events staff are not told of
}

//go:embed templates/*.tmpl
var files embed.FS

// set is the templates parsed twice: as text for the subject, the plain
// text and the webhook, as HTML for the HTML body, so that only the HTML is
// escaped for HTML.
type set struct {
	text *template.Template
	html *htmltemplate.Template
}

// templates are parsed as the program starts, so a broken template fails
// every test at once instead of one message at run time.
var templates = mustParse()

func mustParse() set {
	funcs := map[string]any{
		"date":  func(t time.Time) string { return t.UTC().Format("2 January 2006, 15:04 UTC") },
		"slack": slackEscape,
		"quote": quote,
	}
	return set{
		text: template.Must(template.New("").Funcs(funcs).Option("missingkey=error").ParseFS(files, "templates/*.tmpl")),
		html: htmltemplate.Must(htmltemplate.New("").Funcs(funcs).Option("missingkey=error").ParseFS(files, "templates/*.tmpl")),
	}
}

// Compose renders the message for f.Event. It fails for an event no
// message is written for.
func Compose(f Facts) (Composed, error) {
	name := string(f.Event)
	if templates.text.Lookup(name+".subject") == nil {
		return Composed{}, fmt.Errorf("message: no message for %s", f.Event)
	}
	var c Composed
	var err error
	exec := func(name string) string {
		var b bytes.Buffer
		if err == nil {
			err = templates.text.ExecuteTemplate(&b, name, f)
		}
		return b.String()
	}
	// A subject is one line, whatever the facts hold.
	c.Subject = strings.Join(strings.Fields(exec(name+".subject")), " ")
	c.Text = strings.TrimSpace(exec(name+".text")) + "\n"
	if templates.text.Lookup(name+".webhook") != nil {
		c.Webhook = strings.TrimSpace(exec(name + ".webhook"))
	}
	var b bytes.Buffer
	if err == nil {
		err = templates.html.ExecuteTemplate(&b, name+".html", f)
	}
	c.HTML = b.String()
	if err != nil {
		return Composed{}, fmt.Errorf("message: %s: %w", f.Event, err)
	}
	return c, nil
}

// slackEscape escapes the three characters Slack's message syntax gives a
// meaning to (Mattermost and others read them the same way), so that text
// someone typed makes no <!channel> mention and no link whose label hides
// where it goes. Slack notifies a whole channel only for <!here> and its
// kin, but Mattermost and others do for a bare @here too: a word joiner
// (U+2060, invisible) after the @ of those keeps them from notifying.
func slackEscape(s string) string {
	s = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
	return groupMention.ReplaceAllString(s, "${1}@\u2060${2}")
}

// groupMention is a mention of everyone in a channel, where it starts a word.
var groupMention = regexp.MustCompile(`(?i)(^|[^\w.@-])@(here|channel|everyone|all)\b`)

// quote prefixes every line of s with "> ", as mail and chat quote.
func quote(s string) string {
	return "> " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n> ")
}
