// Command fuzz runs the repository's fuzz targets, one after the other, each
// for a while (go test -fuzz takes one package and one target per call):
//
//	go run ./tools/withpg -- go run ./tools/fuzz -fuzztime 3s
//	go run ./tools/withpg -- go run ./tools/fuzz -fuzztime 10m FuzzBinding
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

// target is one fuzz function and the package that holds it.
type target struct {
	pkg, name string
}

// targets are every fuzz target of the repository, in the order they run.
var targets = []target{
	{"./internal/issue", "FuzzParseRecipient"},
	{"./internal/issue", "FuzzEncryptToPastedKey"},
	{"./internal/webconfig", "FuzzMerge"},
	{"./internal/agent", "FuzzPortalAnswer"},
	{"./internal/workflow", "FuzzParseClusters"},
	{"./internal/workflow", "FuzzAuditFilter"}, // PostgreSQL
	{"./internal/server", "FuzzBinding"},       // PostgreSQL
}

func main() {
	fuzztime := flag.String("fuzztime", "3s", "how long each target runs: a duration, or a count of executions such as 1000x")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: fuzz [-fuzztime d] [FuzzName...]")
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
		fmt.Printf("fuzz: %s in %s for %s\n", t.name, t.pkg, fuzztime)
		cmd := exec.Command("go", "test", "-run", "^$", "-fuzz", "^"+t.name+"$", "-fuzztime", fuzztime, t.pkg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "fuzz: %s failed: %v\n", t.name, err)
			return 1
		}
	}
	return 0
}
