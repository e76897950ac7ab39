package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// auditRoutes registers the audit review: the staff page and its exports,
// and the JSON API.
func (s *Server) auditRoutes(staff, api *echo.Group) {
	staff.GET("/audit", s.auditPage)
	staff.POST("/audit/verify", s.verifyAudit)
	staff.GET("/audit/export.csv", s.exportAudit(exportCSV))
	staff.GET("/audit/export.jsonl", s.exportAudit(exportJSONL))
	api.GET("/audit", s.apiAudit, s.requireStaff)
	api.GET("/audit/export", s.apiAuditExport, s.requireStaff)
}

// auditPageSize is how many events a page of the review shows.
const auditPageSize = 50

// Bounds on the filter's free-form values.
const (
	maxActorFilter = 320 // the longest email address
	maxTextFilter  = 200
)

// auditSubjectTypes are the subject types the filter offers.
var auditSubjectTypes = []string{issue.SubjectUser, issue.SubjectRequest, issue.SubjectCredential, issue.SubjectCluster}

// auditQuery is the review's filter as typed in the page's form or given as
// the API's query parameters, kept as text to fill the form in again.
type auditQuery struct {
	Actor, Action, Cluster, SubjectType, SubjectID, From, To, Text string
}

func readAuditQuery(q url.Values) auditQuery {
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	return auditQuery{Actor: get("actor"), Action: get("action"), Cluster: get("cluster"), SubjectType: get("subject_type"),
		SubjectID: get("subject_id"), From: get("from"), To: get("to"), Text: get("q")}
}

// values is q as URL parameters, empty ones left out.
func (q auditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"actor": q.Actor, "action": q.Action, "cluster": q.Cluster, "subject_type": q.SubjectType,
		"subject_id": q.SubjectID, "from": q.From, "to": q.To, "q": q.Text} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// auditFilter checks q and turns it into the store's filter. Returns an
// *issue.InvalidError naming the parameter at fault.
func (s *Server) auditFilter(ctx context.Context, q auditQuery) (store.AuditFilter, error) {
	var f store.AuditFilter
	if utf8.RuneCountInString(q.Actor) > maxActorFilter {
		return f, issue.Invalid("actor", "actor is an email address of at most %d characters, or its beginning followed by *.", maxActorFilter)
	}
	f.Actor = q.Actor
	if q.Action != "" {
		if !slices.Contains(issue.Actions(), issue.Action(q.Action)) {
			return f, issue.Invalid("action", "action %q is not one the portal records; it is one of %s.", q.Action, auditActionList())
		}
		f.Action = issue.Action(q.Action)
	}
	if q.Cluster != "" {
		c, err := s.store.ClusterByName(ctx, q.Cluster)
		if errors.Is(err, issue.ErrNotFound) {
			return f, issue.Invalid("cluster", "There is no cluster called %q.", q.Cluster)
		}
		if err != nil {
			return f, err
		}
		f.ClusterID = c.ID
	}
	if q.SubjectType != "" {
		if !slices.Contains(auditSubjectTypes, q.SubjectType) {
			return f, issue.Invalid("subject_type", "subject_type is one of %s.", strings.Join(auditSubjectTypes, ", "))
		}
		f.SubjectType = q.SubjectType
	}
	if q.SubjectID != "" {
		id, err := strconv.ParseInt(q.SubjectID, 10, 64)
		if err != nil || id <= 0 {
			return f, issue.Invalid("subject_id", "subject_id is a positive whole number, such as a request's number.")
		}
		if f.SubjectType == "" {
			return f, issue.Invalid("subject_type", "Give subject_type with subject_id: the same number names a request and a credential.")
		}
		f.SubjectID = id
	}
	var err error
	if f.From, err = auditBound("from", q.From, false); err != nil {
		return f, err
	}
	if f.To, err = auditBound("to", q.To, true); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, issue.Invalid("to", "to (%s) must come after from (%s).", q.To, q.From)
	}
	if utf8.RuneCountInString(q.Text) > maxTextFilter {
		return f, issue.Invalid("q", "q, the text to search for in details, can be at most %d characters.", maxTextFilter)
	}
	f.Text = q.Text
	return f, nil
}

func auditActionList() string {
	names := make([]string, 0, len(issue.Actions()))
	for _, a := range issue.Actions() {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

// auditBound reads a time bound: a date (a whole day in UTC) or an RFC 3339
// time. A date as the upper bound includes that whole day.
func auditBound(param, v string, upper bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		if upper {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, issue.Invalid(param, "%s is a date such as 2026-11-25 (UTC) or a time such as 2026-11-25T14:00:00Z.", param)
}

// Cursors are opaque to clients: base64url of "unix-microseconds:id" of the
// last event of a page.

func encodeAuditCursor(r *store.AuditRecord) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%d", r.At.UnixMicro(), r.ID))
}

func decodeAuditCursor(v string) (*store.AuditCursor, error) {
	if v == "" {
		return nil, nil
	}
	bad := issue.Invalid("cursor", "cursor is not one this portal handed out; start again from the first page.")
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, bad
	}
	micro, id, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, bad
	}
	us, err1 := strconv.ParseInt(micro, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err1 != nil || err2 != nil || n <= 0 {
		return nil, bad
	}
	return &store.AuditCursor{At: time.UnixMicro(us).UTC(), ID: n}, nil
}

// auditEvents reads one page of the review: the events after cursor and,
// when more follow, the cursor of the next page.
func (s *Server) auditEvents(ctx context.Context, f store.AuditFilter, cursor string, limit int) ([]*store.AuditRecord, string, error) {
	after, err := decodeAuditCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	rs, err := s.store.AuditEvents(ctx, f, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(rs) <= limit {
		return rs, "", nil
	}
	rs = rs[:limit]
	return rs, encodeAuditCursor(rs[limit-1]), nil
}

// requireAuditor checks, in the handler as for every object, that the
// signed-in user is staff: the audit log names everyone.
func requireAuditor(c echo.Context) error {
	if !currentUser(c).IsStaff() {
		return issue.ErrForbidden
	}
	return nil
}

// auditPageData is the staff audit page.
type auditPageData struct {
	Query        auditQuery
	Error        *issue.InvalidError
	Actions      []issue.Action
	Clusters     []*issue.Cluster
	SubjectTypes []string
	Events       []auditRow
	Filtered     bool
	First        bool   // the newest page
	Newest       string // the first page of the same filter
	Older        string // the next page, or ""
	ExportCSV    string
	ExportJSONL  string
	Verification *store.AuditVerification
	HeadHash     string // of the verification, in hex
}

// Short cuts s to a table cell's worth, for long user agents.
func (auditPageData) Short(s string) string {
	const n = 40
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// auditRow is one event as the page shows it.
type auditRow struct {
	*store.AuditRecord
	SubjectLabel string
	SubjectURL   string // "" when the subject has no page
	Details      string
	Hash         string
}

func newAuditRow(r *store.AuditRecord) auditRow {
	row := auditRow{AuditRecord: r, Hash: hex.EncodeToString(r.Hash)}
	if len(r.Details) > 0 {
		// Details read back from jsonb always encode; the fallback shows
		// them anyway rather than hide an event's details.
		d, err := issue.CanonicalDetails(r.Details)
		row.Details = string(d)
		if err != nil {
			row.Details = fmt.Sprint(r.Details)
		}
	}
	if r.SubjectID != nil {
		id := *r.SubjectID
		row.SubjectLabel = fmt.Sprintf("%s %d", r.SubjectType, id)
		switch r.SubjectType {
		case issue.SubjectRequest:
			row.SubjectLabel, row.SubjectURL = fmt.Sprintf("request #%d", id), fmt.Sprintf("/requests/%d", id)
		case issue.SubjectCredential:
			row.SubjectURL = fmt.Sprintf("/credentials/%d", id)
		case issue.SubjectCluster:
			row.SubjectURL = fmt.Sprintf("/staff/clusters/%d/edit", id)
			if r.ClusterID != nil && *r.ClusterID == id && r.ClusterName != "" {
				row.SubjectLabel = "cluster " + r.ClusterName
			}
		case issue.SubjectUser:
			if r.SubjectEmail != "" {
				row.SubjectLabel = r.SubjectEmail
			}
		}
	}
	return row
}

func (s *Server) auditPage(c echo.Context) error {
	if err := requireAuditor(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	q := readAuditQuery(c.QueryParams())
	clusters, err := s.store.Clusters(ctx)
	if err != nil {
		return err
	}
	data := auditPageData{Query: q, Actions: issue.Actions(), Clusters: clusters, SubjectTypes: auditSubjectTypes,
		Filtered: len(q.values()) > 0, First: c.QueryParam("cursor") == ""}
	switch v, err := s.store.LastAuditVerification(ctx); {
	case err == nil:
		data.Verification, data.HeadHash = v, hex.EncodeToString(v.HeadHash)
	case !errors.Is(err, issue.ErrNotFound):
		return err
	}

	status := http.StatusOK
	f, err := s.auditFilter(ctx, q)
	var rs []*store.AuditRecord
	var next string
	if err == nil {
		rs, next, err = s.auditEvents(ctx, f, c.QueryParam("cursor"), auditPageSize)
	}
	var inv *issue.InvalidError
	switch {
	case errors.As(err, &inv):
		status, data.Error = http.StatusUnprocessableEntity, inv
	case err != nil:
		return err
	}
	for _, r := range rs {
		data.Events = append(data.Events, newAuditRow(r))
	}
	base := q.values()
	data.Newest = "/staff/audit?" + base.Encode()
	data.ExportCSV = "/staff/audit/export.csv?" + base.Encode()
	data.ExportJSONL = "/staff/audit/export.jsonl?" + base.Encode()
	if next != "" {
		older := q.values()
		older.Set("cursor", next)
		data.Older = "/staff/audit?" + older.Encode()
	}
	return s.render(c, status, "staff_audit", page{Title: "Audit log", Data: data})
}

// verifyAudit walks the whole chain now and records what it found. The walk
// goes on if the browser gives up waiting, so that its result is recorded.
func (s *Server) verifyAudit(c echo.Context) error {
	if err := requireAuditor(c); err != nil {
		return err
	}
	u := currentUser(c)
	// The walk goes on if the browser leaves, but not past a shutdown.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 15*time.Minute)
	go func() {
		select {
		case <-s.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer cancel()
	v, err := s.store.VerifyAudit(ctx, 0, nil)
	var p *issue.Problem
	switch {
	case errors.As(err, &p):
		s.setFlash(c, "error", p.Message)
		return c.Redirect(http.StatusSeeOther, "/staff/audit")
	case err != nil:
		return err
	}
	v.VerifiedBy = u.Email
	if err := s.store.RecordAuditVerification(ctx, v); err != nil {
		return err
	}
	attrs := []any{"user_id", u.ID, "events", v.Events, "head_id", v.HeadID, "head_hash", hex.EncodeToString(v.HeadHash),
		"took", v.Took.String(), "ok", v.OK()}
	if !v.OK() {
		attrs = append(attrs, "broken_id", v.Broken.ID, "problem", v.Broken.Problem)
		s.log.ErrorContext(ctx, "audit chain broken", attrs...)
		s.setFlash(c, "error", fmt.Sprintf("The audit chain is broken at event %d: %s", v.Broken.ID, v.Broken.Problem))
	} else {
		s.log.InfoContext(ctx, "audit chain verified", attrs...)
		s.setFlash(c, "success", fmt.Sprintf("The audit chain checks out: %d events, up to event %d.", v.Events, v.HeadID))
	}
	return c.Redirect(http.StatusSeeOther, "/staff/audit")
}

// apiAuditEventJSON is an audit event as the API and the JSON Lines export
// show it. The fields the chain hashes keep their exact form: at in UTC with
// microseconds, details canonical (issue.CanonicalDetails), hashes in hex.
type apiAuditEventJSON struct {
	ID           int64           `json:"id"`
	At           string          `json:"at"`
	ActorID      *int64          `json:"actor_id"`
	Actor        string          `json:"actor"`
	Action       issue.Action    `json:"action"`
	SubjectType  string          `json:"subject_type"`
	SubjectID    *int64          `json:"subject_id"`
	SubjectEmail string          `json:"subject_email,omitempty"`
	ClusterID    *int64          `json:"cluster_id"`
	Cluster      string          `json:"cluster"`
	Details      json.RawMessage `json:"details"`
	IP           string          `json:"ip"`
	UserAgent    string          `json:"user_agent"`
	PrevHash     string          `json:"prev_hash"`
	Hash         string          `json:"hash"`
}

// auditTimeFormat is the time format the chain hashes.
const auditTimeFormat = "2006-01-02T15:04:05.000000Z"

func auditEventJSON(r *store.AuditRecord) (apiAuditEventJSON, error) {
	details, err := issue.CanonicalDetails(r.Details)
	if err != nil {
		return apiAuditEventJSON{}, fmt.Errorf("audit event %d: %w", r.ID, err)
	}
	return apiAuditEventJSON{
		ID: r.ID, At: r.At.UTC().Format(auditTimeFormat), ActorID: r.ActorID, Actor: r.Actor, Action: r.Action,
		SubjectType: r.SubjectType, SubjectID: r.SubjectID, SubjectEmail: r.SubjectEmail, ClusterID: r.ClusterID,
		Cluster: r.ClusterName, Details: details, IP: r.IP, UserAgent: r.UserAgent,
		PrevHash: hex.EncodeToString(r.PrevHash), Hash: hex.EncodeToString(r.Hash),
	}, nil
}

// apiAudit is one page of the review: GET /api/v1/audit with the page's
// filters as query parameters (actor, action, cluster, subject_type,
// subject_id, from, to, q), cursor from the previous page's next_cursor, and
// limit (1 to 500, default 50). next_cursor is null on the last page.
func (s *Server) apiAudit(c echo.Context) error {
	if err := requireAuditor(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	f, err := s.auditFilter(ctx, readAuditQuery(c.QueryParams()))
	if err != nil {
		return err
	}
	limit := auditPageSize
	if v := c.QueryParam("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > store.MaxAuditPage {
			return issue.Invalid("limit", "limit is a whole number from 1 to %d.", store.MaxAuditPage)
		}
	}
	rs, next, err := s.auditEvents(ctx, f, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	out := struct {
		Events     []apiAuditEventJSON `json:"events"`
		NextCursor *string             `json:"next_cursor"`
	}{Events: make([]apiAuditEventJSON, 0, len(rs))}
	for _, r := range rs {
		e, err := auditEventJSON(r)
		if err != nil {
			return err
		}
		out.Events = append(out.Events, e)
	}
	if next != "" {
		out.NextCursor = &next
	}
	return c.JSON(http.StatusOK, out)
}

// Export formats.
const (
	exportCSV   = "csv"
	exportJSONL = "jsonl"
)

func (s *Server) apiAuditExport(c echo.Context) error {
	format := c.QueryParam("format")
	if format != exportCSV && format != exportJSONL {
		return issue.Invalid("format", "format is csv or jsonl.")
	}
	return s.streamAudit(c, format)
}

func (s *Server) exportAudit(format string) echo.HandlerFunc {
	return func(c echo.Context) error { return s.streamAudit(c, format) }
}

// exportFlushEvery is how many events are written between flushes of an
// export to the client.
const exportFlushEvery = 1000

// streamAudit writes every event that matches the request's filter, oldest
// first (in chain order, id ascending), as CSV or as JSON Lines. Events are
// written as PostgreSQL sends them and flushed every thousand, so memory
// stays the same however long the log. Reading is not a change of state,
// so an export is logged but not audited.
//
// Verifying a JSON Lines export offline: each line is one event. For each
// line, build an issue.AuditEvent from at (parse it as RFC 3339), actor_id,
// actor, action, subject_type, subject_id, cluster_id, details (decode it as
// a JSON object with json.Decoder.UseNumber), ip and user_agent; hex-decode
// prev_hash and hash. The line is intact when e.ChainHash(prev_hash) equals
// hash, and the chain is unbroken when each line's prev_hash is the hash of
// the line before it (the first event of the whole log follows
// issue.GenesisHash, 32 zero bytes). id, cluster and subject_email are for
// reading and not hashed. An unfiltered export can be checked link by link;
// in a filtered one each event checks out on its own, and its hash can be
// found in a full export or compared with the head `portal audit verify`
// printed. The CSV export has the same columns; a cell that begins with =,
// +, -, @, a tab, a carriage return or ' has one ' put in front so that
// spreadsheets show it as text: take it off before verifying.
func (s *Server) streamAudit(c echo.Context, format string) error {
	if err := requireAuditor(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	f, err := s.auditFilter(ctx, readAuditQuery(c.QueryParams()))
	if err != nil {
		return err
	}
	start := time.Now()
	res := c.Response()
	// The response starts with the first event (or at the end, for none), so
	// that a query that fails at once is still a proper error page.
	var w auditWriter
	begin := func() error {
		contentType := "text/csv; charset=utf-8"
		if format == exportJSONL {
			contentType = "application/x-ndjson; charset=utf-8"
		}
		h := res.Header()
		h.Set(echo.HeaderContentType, contentType)
		h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="audit-%s.%s"`, start.UTC().Format(time.DateOnly), format))
		h.Set("Cache-Control", "no-store")
		res.WriteHeader(http.StatusOK)
		w = newAuditWriter(format, res)
		return w.header()
	}
	var n int64
	err = s.store.EachAuditEvent(ctx, f, func(r *store.AuditRecord) error {
		if w == nil {
			if err := begin(); err != nil {
				return err
			}
		}
		if err := w.write(r); err != nil {
			return err
		}
		if n++; n%exportFlushEvery == 0 {
			if err := w.flush(); err != nil {
				return err
			}
			res.Flush()
		}
		return nil
	})
	if err == nil && w == nil {
		err = begin()
	}
	if err == nil {
		err = w.flush()
	}
	u := currentUser(c)
	attrs := []any{"user_id", u.ID, "format", format, "events", n, "bytes", res.Size, "took", time.Since(start).String(),
		"filter", readAuditQuery(c.QueryParams()).values().Encode()}
	if err != nil {
		if w == nil {
			return err
		}
		// The status line is gone: cut the connection, so that the client
		// sees an incomplete download rather than a short file that looks
		// whole.
		s.log.ErrorContext(ctx, "audit export failed", append(attrs, "error", err.Error())...)
		panic(http.ErrAbortHandler)
	}
	s.log.InfoContext(ctx, "audit export", attrs...)
	return nil
}

// auditWriter writes an export, buffered.
type auditWriter interface {
	header() error
	write(*store.AuditRecord) error
	flush() error
}

func newAuditWriter(format string, w io.Writer) auditWriter {
	if format == exportJSONL {
		bw := bufio.NewWriterSize(w, 32<<10)
		return &jsonlWriter{bw: bw, enc: json.NewEncoder(bw)}
	}
	return &csvWriter{w: csv.NewWriter(w)}
}

type jsonlWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

func (j *jsonlWriter) header() error { return nil }

func (j *jsonlWriter) write(r *store.AuditRecord) error {
	e, err := auditEventJSON(r)
	if err != nil {
		return err
	}
	return j.enc.Encode(e) // one line, with its newline
}

func (j *jsonlWriter) flush() error { return j.bw.Flush() }

type csvWriter struct {
	w *csv.Writer
}

// auditCSVColumns are the CSV export's columns, the JSON fields' names.
var auditCSVColumns = []string{"id", "at", "actor_id", "actor", "action", "subject_type", "subject_id", "subject_email",
	"cluster_id", "cluster", "details", "ip", "user_agent", "prev_hash", "hash"}

func (cw *csvWriter) header() error { return cw.w.Write(auditCSVColumns) }

func (cw *csvWriter) write(r *store.AuditRecord) error {
	e, err := auditEventJSON(r)
	if err != nil {
		return err
	}
	return cw.w.Write([]string{
		strconv.FormatInt(e.ID, 10), e.At, auditID(e.ActorID), csvCell(e.Actor), csvCell(string(e.Action)),
		csvCell(e.SubjectType), auditID(e.SubjectID), csvCell(e.SubjectEmail), auditID(e.ClusterID), csvCell(e.Cluster),
		csvCell(string(e.Details)), csvCell(e.IP), csvCell(e.UserAgent), e.PrevHash, e.Hash,
	})
}

func (cw *csvWriter) flush() error {
	cw.w.Flush()
	return cw.w.Error()
}

func auditID(p *int64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatInt(*p, 10)
}

// csvCell keeps a spreadsheet from reading a cell as a formula: a user agent
// or a reason can be anything a visitor sent. A cell that begins with a
// formula character, or with the quote itself (so that the rule can be
// undone), gets a leading '.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r'", rune(s[0])) {
		return "'" + s
	}
	return s
}
