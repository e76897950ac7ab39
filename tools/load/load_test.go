package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestLoadAtATinySize runs the whole load test small, so that the test
// suite proves it still works: the seed, the portal process, every route
// people use, the error count and the table. It asserts no timing.
func TestLoadAtATinySize(t *testing.T) {
	if os.Getenv("DATABASE_URL") == "" {
		t.Fatal("DATABASE_URL is not set: run the tests with go run ./tools/withpg -- go test ./tools/load/")
	}
	const stray = "/no-such-page"
	var out strings.Builder
	rep, err := run(t.Context(), config{
		Requests: 50, Events: 1000, Customers: 3, Staff: 2, Clusters: 3,
		Browse: 3 * time.Second, Pause: 50 * time.Millisecond, Saturate: 500 * time.Millisecond, Clients: 2,
		Verify: true, Each: true, strayPath: stray,
	}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()

	routes := map[string]routeSummary{}
	for _, s := range rep.browse.summary() {
		routes[s.route] = s
	}
	for _, route := range []string{
		"GET /dashboard", "GET /requests/:id", "GET /credentials/:id", "GET /requests/new", "GET /sessions",
		"GET /tokens", "GET /api/v1/requests (session)",
		"GET /staff/requests", "GET /requests/:id (staff)", "GET /staff/requests/:id/approve", "POST /staff/requests/:id/approve",
		"GET /staff/revocations", "GET /staff/clusters", "GET /staff/audit", "GET /staff/audit?actor&action",
		"GET /staff/people", "GET /staff/notifications",
	} {
		s, ok := routes[route]
		switch {
		case !ok || s.requests == 0:
			t.Errorf("%s was never requested while browsing", route)
		case s.errors != 0:
			t.Errorf("%s: %d errors, want none", route, s.errors)
		}
		if !strings.Contains(text, route+" ") {
			t.Errorf("the table has no line for %s", route)
		}
	}

	// The page that does not exist is the one error, and it is shown.
	if s := routes["GET "+stray]; s.requests != 1 || s.errors != 1 {
		t.Errorf("GET %s: %d requests and %d errors, want 1 and 1", stray, s.requests, s.errors)
	}
	for _, want := range []string{
		"first errors (of 1):",
		"GET " + stray + " (" + stray + "): status 404",
		"FAIL  no errors (1 while browsing, 0 while saturating, 0 on /healthz, 0 in the portal's log)",
		"the audit chain checks out",
		"peak RSS < 150 MB",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if rep.passed {
		t.Error("passed is true with an error counted")
	}

	if n, _ := rep.saturate.total(); n == 0 {
		t.Error("no page was requested while saturating")
	}
	if n, _ := rep.healthz.total(); n == 0 {
		t.Error("/healthz was never requested while saturating")
	}
	if len(rep.alone) != len(customerSteps) {
		t.Errorf("%d pages saturated alone, want each of the %d customer pages", len(rep.alone), len(customerSteps))
	}
	for _, a := range rep.alone {
		if n, _ := a.total(); n == 0 {
			t.Errorf("a page saturated alone was never requested: %v", a.summary())
		}
	}
	if !strings.Contains(text, "each page alone, without pause") {
		t.Errorf("output lacks the table of pages alone:\n%s", text)
	}
	if rep.peakRSS <= 0 {
		t.Errorf("peak RSS %d, want the portal's", rep.peakRSS)
	}
}
