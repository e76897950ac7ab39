package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// renderError shows an error page with its own words and, optionally, one
// way forward.
func (s *Server) renderError(c echo.Context, status int, title, msg, action, actionURL string) error {
	return s.render(c, status, "error", page{Title: title, Data: errorPage{
		Title: title, Message: msg, Action: action, ActionURL: actionURL,
	}})
}

// errorPage is the Data of the error template.
type errorPage struct {
	Title, Message    string
	Action, ActionURL string
}

// apiError is the body of every error the JSON API returns.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	// ExistingRequestID names the request a refusal points at: the pending
	// request a duplicate clashes with.
	ExistingRequestID int64 `json:"existing_request_id,omitempty"`
}

// Messages for errors that carry none of their own.
const msgInternal = "Something went wrong on our side. It has been logged; please try again later."

// kinds maps each kind of portal.Error to its status and the sentence shown
// when the error carries none: the one table of the web layer.
var kinds = map[portal.Kind]struct {
	status  int
	message string
}{
	portal.KindNotFound:     {http.StatusNotFound, "There is nothing at this address, or it is not yours to see."},
	portal.KindForbidden:    {http.StatusForbidden, "You are signed in, but this page is for 2i2c staff only."},
	portal.KindUnauthorized: {http.StatusUnauthorized, "Sign in first."},
	portal.KindInvalid:      {http.StatusUnprocessableEntity, "The input is not valid."},
	portal.KindConflict:     {http.StatusConflict, "That clashes with what is already there. Reload the page and try again."},
	portal.KindUnavailable:  {http.StatusServiceUnavailable, "A service the portal depends on is not answering. Please try again in a minute."},
}

// problem is err as the person sees it: its status and message, the field
// at fault and the object it points at. Anything not a portal.Error or an
// echo.HTTPError is a 500 without detail.
func problem(err error) (status int, pe *portal.Error) {
	var he *echo.HTTPError
	if errors.As(err, &pe) {
		k, ok := kinds[pe.Kind]
		if !ok {
			return http.StatusInternalServerError, &portal.Error{Message: msgInternal}
		}
		if pe.Message == "" { // a sentinel, or a wrapped one
			pe = &portal.Error{Kind: pe.Kind, Message: k.message}
		}
		return k.status, pe
	}
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && he.Code < 500 {
			msg = m
		}
		if he.Code == http.StatusRequestEntityTooLarge { // echo's own words, from BodyLimit
			msg = msgTooLarge
		}
		return he.Code, &portal.Error{Message: msg}
	}
	return http.StatusInternalServerError, &portal.Error{Message: msgInternal}
}

// fixable returns err as the refusal a form shows in place, with the status
// to answer: a field to fix (422) or a state that changed meanwhile (409).
// Anything else is not the person's to act on there, and ok is false: the
// handler returns err to the error handler.
func fixable(err error) (pe *portal.Error, status int, ok bool) {
	if !errors.Is(err, portal.ErrInvalid) && !errors.Is(err, portal.ErrConflict) {
		return nil, 0, false
	}
	status, pe = problem(err)
	return pe, status, true
}

// problems is every refusal err holds, in order: a form reports them all at
// once, each beside its field. Validation joins them (errors.Join).
func problems(err error) []*portal.Error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var all []*portal.Error
		for _, e := range j.Unwrap() {
			all = append(all, problems(e)...)
		}
		return all
	}
	if _, pe := problem(err); pe != nil {
		return []*portal.Error{pe}
	}
	return nil
}

// fieldProblem is the message to show beside field name among a form's
// problems, as fieldError says.
func fieldProblem(all []*portal.Error, name string) string {
	for _, pe := range all {
		if m := fieldError(pe, name); m != "" {
			return m
		}
	}
	return ""
}

// linkURL is the page of the object an error points at, or "" when it has
// none.
func linkURL(l *portal.Link) string {
	if l == nil {
		return ""
	}
	switch l.Subject {
	case portal.SubjectRequest:
		return requestURL(l.ID)
	case portal.SubjectCredential:
		return credentialURL(l.ID)
	}
	return ""
}

// fieldError is the message to show beside field name of a re-rendered
// form, or "": only invalid input is shown there, and never beside a field
// that held a secret (its warning stands at the top of the form).
func fieldError(pe *portal.Error, name string) string {
	if pe == nil || pe.Kind != portal.KindInvalid || pe.Field != name || pe.Secret {
		return ""
	}
	return pe.Message
}

// forgetSecret blanks, of the fields a form shows back after a refusal, the
// one pe says held a secret (a private key, a password), so that the page
// never repeats it; all of them when pe names none of them.
func forgetSecret(pe *portal.Error, fields map[string]*string) {
	if pe == nil || !pe.Secret {
		return
	}
	if f, ok := fields[pe.Field]; ok {
		*f = ""
		return
	}
	for _, f := range fields {
		*f = ""
	}
}

// handleError is the one place an error becomes a response: portal errors
// map to their kind's status and their message, echo's own errors keep
// theirs, and anything else is a 500 with a log line and the request ID, and
// no detail for the client. Refusals (403) are audited.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, pe := problem(err)
	ctx := c.Request().Context()
	switch {
	case status == http.StatusServiceUnavailable:
		// Expected while the database (or the identity provider) is away;
		// the driver's words name hosts and roles, never a password.
		s.log.WarnContext(ctx, "request refused: unavailable", "error", err.Error(),
			"method", c.Request().Method, "path", c.Request().URL.Path)
		c.Response().Header().Set("Retry-After", retryAfter)
	case status >= 500:
		s.log.ErrorContext(ctx, "request failed", "error", err.Error(),
			"method", c.Request().Method, "path", c.Request().URL.Path)
	}
	if status == http.StatusForbidden {
		s.auditRefusal(c, pe.Message)
	}

	switch {
	case c.Request().Method == http.MethodHead:
		err = c.NoContent(status)
	case isAPI(c):
		body := apiError{Error: pe.Message, Field: pe.Field}
		if pe.Link != nil && pe.Link.Subject == portal.SubjectRequest {
			body.ExistingRequestID = pe.Link.ID
		}
		err = c.JSON(status, body)
	default:
		title, msg := errorWords(status, pe.Message)
		p := errorPage{Title: title, Message: msg}
		if u := linkURL(pe.Link); u != "" {
			p.Action, p.ActionURL = fmt.Sprintf("See %s #%d", pe.Link.Subject, pe.Link.ID), u
		}
		err = s.render(c, status, "error", page{Title: title, Data: p})
	}
	if err != nil {
		s.log.ErrorContext(ctx, "writing error response", "error", err.Error())
		_ = c.String(http.StatusInternalServerError, "internal error")
	}
}

// retryAfter is the Retry-After of a 503, in seconds: the pages ask people
// to try again in a minute, and a script told the same waits as long. The
// pool reconnects within seconds of the database's return, so a client
// that retries sooner is not refused for it.
const retryAfter = "60"

// sessionError is the session manager's ErrorFunc: a session that cannot
// be loaded or saved is answered by the one error handler, as any other
// failure is, so a database outage is a 503 there too rather than scs's
// plain 500.
func (s *Server) sessionError(w http.ResponseWriter, r *http.Request, err error) {
	if store.Unreachable(err) {
		err = fmt.Errorf("session store: %w: %w", portal.ErrDatabaseUnavailable, err)
	} else {
		err = fmt.Errorf("session store: %w", err)
	}
	s.handleError(err, s.echo.NewContext(r, w))
	// When the session's save fails at the handler's first write, scs goes
	// on to write what the handler wrote after this answer: it is dropped,
	// so the answer is the error page alone.
	if resp, ok := w.(*echo.Response); ok {
		resp.Writer = droppedBody{resp.Writer}
	}
}

// droppedBody is a response whose answer was given already: it keeps the
// headers and drops whatever is written after.
type droppedBody struct{ http.ResponseWriter }

func (droppedBody) WriteHeader(int) {}

func (droppedBody) Write(b []byte) (int, error) { return len(b), nil }

// headings are the error pages' headings in plain words, by status: never
// an HTTP phrase such as "Conflict".
var headings = map[int]string{
	http.StatusBadRequest:            "That could not be read",
	http.StatusUnauthorized:          "Please sign in",
	http.StatusForbidden:             "This is not open to you",
	http.StatusNotFound:              "There is nothing here",
	http.StatusMethodNotAllowed:      "That cannot be done at this address",
	http.StatusRequestEntityTooLarge: "That was too much to send",
	http.StatusUnprocessableEntity:   "Please check what you sent",
	http.StatusTooManyRequests:       "Too many tries: please wait a minute",
	http.StatusServiceUnavailable:    "The portal cannot do that right now",
}

// errorWords is an error page's heading and text for status and message. A
// refusal of the state of things (409) is headed by its message's first
// sentence, which says what happened ("This credential was revoked …"),
// and the rest of the message follows as the text.
func errorWords(status int, msg string) (heading, text string) {
	if status == http.StatusConflict {
		if i := strings.Index(msg, ". "); i > 0 {
			return msg[:i], msg[i+2:]
		}
		return strings.TrimSuffix(msg, "."), ""
	}
	if h, ok := headings[status]; ok {
		return h, msg
	}
	if status >= 500 {
		return "Something went wrong on our side", msg
	}
	return "That did not work", msg
}

func isAPI(c echo.Context) bool {
	p := c.Request().URL.Path
	return len(p) >= 5 && p[:5] == "/api/"
}

// auditRefusal records a 403 in the audit log. Anyone can cause as many as
// they like (a form post without its token, a customer's script on a staff
// address), and the log keeps every row for good; so refusals are audited
// up to a few a minute per person, or per address for someone not signed
// in, and logged beyond.
func (s *Server) auditRefusal(c echo.Context, reason string) {
	ctx := c.Request().Context()
	a := s.actor(c)
	budget, attrs := "ip:"+a.IP, []any{"ip", a.IP}
	if a.User != nil {
		budget, attrs = "user:"+strconv.FormatInt(a.User.ID, 10), append(attrs, "user_id", a.User.ID)
	}
	if ok, _ := s.refusals.Allow(budget); !ok {
		attrs = append(attrs, "path", portal.Printable(c.Request().URL.Path, 200))
		s.log.WarnContext(ctx, "refused; not audited, too many refusals of this person or address", attrs...)
		return
	}
	details := map[string]any{"method": c.Request().Method, "path": portal.Printable(c.Request().URL.Path, 200), "reason": reason}
	if err := s.wf.Record(ctx, a, portal.ActionAccessRefused, "", 0, details); err != nil {
		s.log.ErrorContext(ctx, "auditing a refusal", "error", err.Error())
	}
}
