package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
			row.SubjectLabel, row.SubjectURL = fmt.Sprintf("request #%d", id), requestURL(id)
		case portal.SubjectCredential:
			row.SubjectURL = credentialURL(id)
		case portal.SubjectCluster:
			row.SubjectURL = fmt.Sprintf("/staff/clusters/%d/edit", id)
			if r.ClusterID != nil && *r.ClusterID == id && r.ClusterName != "" {
				row.SubjectLabel = "cluster " + r.ClusterName
			}
		case portal.SubjectMessage:
			row.SubjectLabel = fmt.Sprintf("message #%d", id)
			row.SubjectURL = fmt.Sprintf("%s#message-%d", notificationsURL("", id+1), id) // the page it heads
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
		status, data.Error, events = st, labelled(pe, auditFilterLabels), &workflow.AuditPage{}
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

// auditFilterLabels are the audit page's filter fields as its form labels
// them: its refusals speak of these, not of the query's parameter names,
// which the API's refusals keep.
var auditFilterLabels = map[string]string{
	"actor": "Actor", "action": "Action", "cluster": "Cluster", "subject_type": "Subject",
	"subject_id": "Subject number", "from": "From", "to": "To", "q": "Details contain",
}

// labelled is pe with the parameter names its message begins with, or holds
// (the distinctive ones, with an underscore), written as labels says.
func labelled(pe *portal.Error, labels map[string]string) *portal.Error {
	msg := pe.Message
	for name, label := range labels {
		quoted := "“" + label + "”"
		if strings.Contains(name, "_") {
			msg = strings.ReplaceAll(msg, name, quoted)
		}
		if rest, ok := strings.CutPrefix(msg, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, ",")) {
			msg = quoted + rest
		}
	}
	msg = strings.Replace(msg, "after from (", "after “From” (", 1)
	out := *pe
	out.Message = msg
	return &out
}
