// Command fuzz runs the repository's fuzz targets, one after the other, each
// for a while (go test -fuzz takes one package and one target per call):
//
//	go run ./tools/withpg -- go run ./tools/fuzz
//	go run ./tools/withpg -- go run ./tools/fuzz -fuzztime 2000000x FuzzBinding
//	go run ./tools/withpg -- go run ./tools/fuzz -fuzztime 10m FuzzBinding
//
// By default each target runs its own count of executions, about three
// seconds' worth on a two-core machine, not for a time: with a duration, Go
// 1.26's fuzzing coordinator can report "context deadline exceeded" as a
// failure when the time runs out while a worker is mid-call, with no failing
// input at all (go.dev/issue/75804, fixed in Go 1.27). A count has no
// deadline to race, so make test cannot fail on it. A duration still works
// for a long run by hand; a failure there that wrote no file under
// testdata/fuzz/ is that race, not a bug found.
//
// With names, only those targets run. Some targets need PostgreSQL
// (DATABASE_URL), hence withpg. targets is the one list of them;
// TestEveryFuzzTargetIsListed fails when a Fuzz function of the repository
// is missing from it. A crash stops the run: go test writes the failing
// input to the package's testdata/fuzz/<target>/, where it becomes a
// regression test once committed.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
)

// target is one fuzz function, the package that holds it, and how many
// executions it runs by default.
type target struct {
	pkg, name string
	execs     int
}

// targets are every fuzz target of the repository, in the order they run.
// Their counts were sized from the rates of a 3 s run on a two-core
// machine (from about 230 executions a second for FuzzBinding, which goes
// through the server and PostgreSQL, to 7,000 for FuzzParseRecipient).
var targets = []target{
	{"./internal/issue", "FuzzParseRecipient", 40000},
	{"./internal/issue", "FuzzEncryptToPastedKey", 10000},
	{"./internal/webconfig", "FuzzMerge", 8000},
	{"./internal/agent", "FuzzPortalAnswer", 30000},
	{"./internal/workflow", "FuzzParseClusters", 20000},
	{"./internal/workflow", "FuzzAuditFilter", 6000}, // PostgreSQL
	{"./internal/server", "FuzzBinding", 1500},       // PostgreSQL
}

func main() {
	fuzztime := flag.String("fuzztime", "", "how long every target runs: a count of executions such as 1000x, or a duration; by default each target's own count")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: fuzz [-fuzztime n] [FuzzName...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	os.Exit(run(*fuzztime, flag.Args()))
}

func run(fuzztime string, names []string) int {
	for _, n := range names {
		if !slices.ContainsFunc(targets, func(t target) bool { return t.name == n }) {
			fmt.Fprintf(os.Stderr, "fuzz: no target %s\n", n)
			return 2
		}
	}
	for _, t := range targets {
		if len(names) > 0 && !slices.Contains(names, t.name) {
			continue
		}
		budget := fuzztime
		if budget == "" {
			budget = fmt.Sprintf("%dx", t.execs)
		}
		fmt.Printf("fuzz: %s in %s for %s\n", t.name, t.pkg, budget)
		cmd := exec.Command("go", "test", "-run", "^$", "-fuzz", "^"+t.name+"$", "-fuzztime", budget, t.pkg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "fuzz: %s failed: %v\n", t.name, err)
			return 1
		}
	}
	return 0
}
