package server

import (
	"net/url"
	"strings"
	"testing"
)

// TestBytesPostgreSQLRefusesAreA4xx sends a NUL and invalid UTF-8 where
// names and filters go: each is answered with a 4xx saying what to fix,
// never a 500, and no ERROR line is logged.
func TestBytesPostgreSQLRefusesAreA4xx(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	anonymous := p.browser()
	tests := []struct {
		name string
		do   func() response
	}{
		{"anonymous publication of cluster NUL", func() response { return anonymous.get("/api/v1/clusters/%00/web-config.yml") }},
		{"anonymous publication of invalid UTF-8", func() response { return anonymous.get("/api/v1/clusters/%ff%fe/web-config.yml") }},
		{"a request for cluster NUL", func() response {
			return alice.submit("/requests/new", "/requests", url.Values{"cluster": {"awi\x00ciroh"},
				"public_key": {newKey(t).Recipient().String()}, "justification": {"Dashboards for the research team."}})
		}},
		{"a request for cluster invalid UTF-8 over the API", func() response {
			return alice.apiPost("/api/v1/requests", `{"cluster":"\u0000x","public_key":"`+newKey(t).Recipient().String()+`","justification":"Dashboards for the team."}`)
		}},
		{"an audit filter on cluster NUL", func() response { return sam.get("/staff/audit?cluster=%00") }},
		{"an audit filter on actor NUL", func() response { return sam.get("/staff/audit?actor=a%00b") }},
		{"an audit text search with invalid UTF-8", func() response { return sam.get("/api/v1/audit?q=%ff") }},
	}
	for _, tt := range tests {
		r := tt.do()
		if r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Errorf("%s: %d, want a 4xx\n%s", tt.name, r.StatusCode, r.Body)
		}
	}
	for line := range strings.Lines(p.logs.String()) {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("an ERROR was logged: %s", line)
		}
	}
	if n := p.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("%d requests stored from hostile input", n)
	}
}
