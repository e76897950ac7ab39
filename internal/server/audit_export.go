package server

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

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
