package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/2i2c-org/credential-portal/internal/server
cpu: Intel(R) Xeon(R) CPU
BenchmarkAutoApprovedRequest-2   	     100	  11600000 ns/op	  254000 B/op	    2361 allocs/op
BenchmarkAPIAuth/cookie_session-2         	    1000	   1560000 ns/op
BenchmarkAPIAuth/bearer_token-2           	    1000	    900000 ns/op
--- FAIL: BenchmarkBroken
    broken_test.go:12: the database went away
PASS
ok  	github.com/2i2c-org/credential-portal/internal/server	12.3s
pkg: github.com/2i2c-org/credential-portal/internal/workflow
BenchmarkApprove/approve-2   	     100	  70000000 ns/op	 1.62 total/(bcrypt+age)	5000000 est-db-ns/op
`

func TestTableShowsFiguresBesideGoals(t *testing.T) {
	var out bytes.Buffer
	missed, err := run(strings.NewReader(sample), &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"broken_test.go:12: the database went away", // failures are not swallowed
		"server    AutoApprovedRequest",
		"248.0Ki",
		"11.60 ms",
		"≤ 25 ms from request to download met (11.60 ms)",
		"bearer − cookie ≤ 0.2 ms met (-0.66 ms)",
		"total/(bcrypt+age) ≤ 1.5 MISSED (1.620)",
		"5.00 ms est-db-sec/op",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if missed != 1 {
		t.Errorf("missed = %d, want 1 (the approve ratio)", missed)
	}
}

func TestGoalOfABenchmarkThatDidNotRunIsReported(t *testing.T) {
	var out bytes.Buffer
	missed, err := run(strings.NewReader("pkg: x\nBenchmarkIssue-2 10 100 ns/op\n"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if missed != len(goals) {
		t.Errorf("missed = %d, want %d", missed, len(goals))
	}
	if !strings.Contains(out.String(), "not checked, the benchmark did not run") {
		t.Errorf("no word of the goals left unchecked:\n%s", out.String())
	}
}

func TestNoResultsIsAnError(t *testing.T) {
	if _, err := run(strings.NewReader("FAIL\tgithub.com/x [build failed]\n"), &bytes.Buffer{}); err == nil {
		t.Fatal("no results and no error")
	}
}
