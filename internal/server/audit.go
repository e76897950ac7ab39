package server

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
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

// readAuditQuery reads the review's filter from the page's form or the
// API's query parameters.
func readAuditQuery(q url.Values) workflow.AuditQuery {
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	return workflow.AuditQuery{Actor: get("actor"), Action: get("action"), Cluster: get("cluster"), SubjectType: get("subject_type"),
		SubjectID: get("subject_id"), From: get("from"), To: get("to"), Text: get("q")}
}

// auditValues is q as URL parameters, empty ones left out.
func auditValues(q workflow.AuditQuery) url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"actor": q.Actor, "action": q.Action, "cluster": q.Cluster, "subject_type": q.SubjectType,
		"subject_id": q.SubjectID, "from": q.From, "to": q.To, "q": q.Text} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// auditPageData is the staff audit page.
type auditPageData struct {
	Query        workflow.AuditQuery
	Error        *portal.Error // a filter to fix
	Actions      []portal.Action
	Clusters     []*portal.Cluster
	SubjectTypes []string
	Events       []auditRow
	Filtered     bool
	First        bool   // the newest page
	Newest       string // the first page of the same filter
	Older        string // the next page, or ""
	ExportCSV    string
	ExportJSONL  string
	Verification *portal.AuditVerification
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
	*portal.AuditRecord
	SubjectLabel string
	SubjectURL   string // "" when the subject has no page
	Details      string
	Hash         string
}

func newAuditRow(r *portal.AuditRecord) auditRow {
	row := auditRow{AuditRecord: r, Hash: hex.EncodeToString(r.Hash)}
	if len(r.Details) > 0 {
		// Details read back from jsonb always encode; the fallback shows
		// them anyway rather than hide an event's details.
		d, err := portal.CanonicalDetails(r.Details)
		row.Details = string(d)
		if err != nil {
			row.Details = fmt.Sprint(r.Details)
		}
	}
	if r.SubjectID != nil {
		id := *r.SubjectID
		row.SubjectLabel = fmt.Sprintf("%s %d", r.SubjectType, id)
		switch r.SubjectType {
		case portal.SubjectRequest:
			row.SubjectLabel, row.SubjectURL = fmt.Sprintf("request #%d", id), fmt.Sprintf("/requests/%d", id)
		case portal.SubjectCredential:
			row.SubjectURL = fmt.Sprintf("/credentials/%d", id)
		case portal.SubjectCluster:
			row.SubjectURL = fmt.Sprintf("/staff/clusters/%d/edit", id)
			if r.ClusterID != nil && *r.ClusterID == id && r.ClusterName != "" {
				row.SubjectLabel = "cluster " + r.ClusterName
			}
		case portal.SubjectUser:
			if r.SubjectEmail != "" {
				row.SubjectLabel = r.SubjectEmail
			}
		}
	}
	return row
}

func (s *Server) auditPage(c echo.Context) error {
	ctx, a := c.Request().Context(), s.actor(c)
	q := readAuditQuery(c.QueryParams())
	clusters, err := s.wf.Clusters(ctx, a)
	if err != nil {
		return err
	}
	data := auditPageData{Query: q, Actions: portal.Actions(), Clusters: clusters, SubjectTypes: workflow.AuditSubjectTypes,
		Filtered: len(auditValues(q)) > 0, First: c.QueryParam("cursor") == ""}
	switch v, err := s.wf.LastAuditVerification(ctx, a); {
	case err == nil:
		data.Verification, data.HeadHash = v, hex.EncodeToString(v.HeadHash)
	case !errors.Is(err, portal.ErrNotFound):
		return err
	}

	status := http.StatusOK
	events, err := s.wf.AuditEvents(ctx, a, q, c.QueryParam("cursor"), auditPageSize)
	if pe, st, ok := fixable(err); ok {
		status, data.Error, events = st, pe, &workflow.AuditPage{}
	} else if err != nil {
		return err
	}
	for _, r := range events.Events {
		data.Events = append(data.Events, newAuditRow(r))
	}
	base := auditValues(q)
	data.Newest = "/staff/audit?" + base.Encode()
	data.ExportCSV = "/staff/audit/export.csv?" + base.Encode()
	data.ExportJSONL = "/staff/audit/export.jsonl?" + base.Encode()
	if events.Next != "" {
		older := auditValues(q)
		older.Set("cursor", events.Next)
		data.Older = "/staff/audit?" + older.Encode()
	}
	return s.render(c, status, "staff_audit", page{Title: "Audit log", Data: data})
}

// verifyAudit walks the whole chain now and records what it found. The walk
// goes on if the browser gives up waiting, so that its result is recorded.
func (s *Server) verifyAudit(c echo.Context) error {
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
	v, err := s.wf.VerifyAudit(ctx, s.actor(c), 0, nil)
	switch pe, _, ok := fixable(err); {
	case ok: // another walk is running
		s.setFlash(c, "error", pe.Message)
	case err != nil:
		return err
	case !v.OK():
		s.setFlash(c, "error", fmt.Sprintf("The audit chain is broken at event %d: %s", v.Broken.ID, v.Broken.Problem))
	default:
		s.setFlash(c, "success", fmt.Sprintf("The audit chain checks out: %d events, up to event %d.", v.Events, v.HeadID))
	}
	return c.Redirect(http.StatusSeeOther, "/staff/audit")
}

// apiAuditEventJSON is an audit event as the API and the JSON Lines export
// show it. The fields the chain hashes keep their exact form: at in UTC with
// microseconds, details canonical (portal.CanonicalDetails), hashes in hex.
type apiAuditEventJSON struct {
	ID           int64           `json:"id"`
	At           string          `json:"at"`
	ActorID      *int64          `json:"actor_id"`
	Actor        string          `json:"actor"`
	Action       portal.Action   `json:"action"`
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

func auditEventJSON(r *portal.AuditRecord) (apiAuditEventJSON, error) {
	details, err := portal.CanonicalDetails(r.Details)
	if err != nil {
		return apiAuditEventJSON{}, fmt.Errorf("audit event %d: %w", r.ID, err)
	}
	return apiAuditEventJSON{
		ID: r.ID, At: r.At.UTC().Format(portal.AuditTimeFormat), ActorID: r.ActorID, Actor: r.Actor, Action: r.Action,
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
	limit := auditPageSize
	if v := c.QueryParam("limit"); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil {
			limit = -1 // refused, with the range, by the workflow
		}
	}
	events, err := s.wf.AuditEvents(c.Request().Context(), s.actor(c), readAuditQuery(c.QueryParams()), c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	out := struct {
		Events     []apiAuditEventJSON `json:"events"`
		NextCursor *string             `json:"next_cursor"`
	}{Events: make([]apiAuditEventJSON, 0, len(events.Events))}
	for _, r := range events.Events {
		e, err := auditEventJSON(r)
		if err != nil {
			return err
		}
		out.Events = append(out.Events, e)
	}
	if events.Next != "" {
		out.NextCursor = &events.Next
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
		return portal.Invalid("format", "format is csv or jsonl.")
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
// line, build an portal.AuditEvent from at (parse it as RFC 3339), actor_id,
// actor, action, subject_type, subject_id, cluster_id, details (decode it as
// a JSON object with json.Decoder.UseNumber), ip and user_agent; hex-decode
// prev_hash and hash. The line is intact when e.ChainHash(prev_hash) equals
// hash, and the chain is unbroken when each line's prev_hash is the hash of
// the line before it (the first event of the whole log follows
// portal.GenesisHash, 32 zero bytes). id, cluster and subject_email are for
// reading and not hashed. An unfiltered export can be checked link by link;
// in a filtered one each event checks out on its own, and its hash can be
// found in a full export or compared with the head `portal audit verify`
// printed. The CSV export has the same columns; a cell that begins with =,
// +, -, @, a tab, a carriage return or ' has one ' put in front so that
// spreadsheets show it as text: take it off before verifying.
func (s *Server) streamAudit(c echo.Context, format string) error {
	ctx := c.Request().Context()
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
	err := s.wf.EachAuditEvent(ctx, s.actor(c), readAuditQuery(c.QueryParams()), func(r *portal.AuditRecord) error {
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
		"filter", auditValues(readAuditQuery(c.QueryParams())).Encode()}
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
	write(*portal.AuditRecord) error
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

func (j *jsonlWriter) write(r *portal.AuditRecord) error {
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

func (cw *csvWriter) write(r *portal.AuditRecord) error {
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
