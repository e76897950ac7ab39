// Command benchtable prints the output of `go test -bench` as one table: a
// row per benchmark with its time, memory and own metrics, and the goal a
// benchmark is held to beside its figure, with whether it was met. `make
// bench` pipes every package's benchmarks through it.
//
//	go test -run '^$' -bench . -benchmem ./... | go run ./tools/benchtable
//
// The benchmark output itself is parsed by golang.org/x/perf/benchfmt, the
// library benchstat reads with. A goal that is missed makes the command exit
// 1 after the table; a goal whose benchmark did not run is reported as such.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchunit"
)

// row is one benchmark's result, named as benchfmt names it (without the
// Benchmark prefix and the GOMAXPROCS suffix). benchfmt also writes times in
// seconds: ns/op is read as sec/op, est-db-ns/op as est-db-sec/op.
type row struct {
	pkg, name string
	iters     int
	values    map[string]float64
	units     []string // in the order the benchmark printed them
}

// goal is a target a benchmark is held to: check reads the rows and returns
// the figure the goal is about, as it should be printed, and whether it
// holds; ok is false when the rows it needs are missing.
type goal struct {
	bench string // the row the goal is printed beside
	text  string
	check func(rows map[string]*row) (figure string, met, ok bool)
}

// goals are the targets stated in the benchmarks' doc comments.
var goals = []goal{
	{
		bench: "AutoApprovedRequest",
		text:  "≤ 25 ms from request to download",
		check: atMost("AutoApprovedRequest", "sec/op", 25e-3),
	},
	{
		bench: "Approve/approve",
		text:  "total/(bcrypt+age) ≤ 1.5",
		check: atMost("Approve/approve", "total/(bcrypt+age)", 1.5),
	},
	{
		bench: "APIAuth/bearer_token",
		text:  "bearer − cookie ≤ 0.2 ms",
		check: func(rows map[string]*row) (string, bool, bool) {
			bearer, ok1 := value(rows, "APIAuth/bearer_token", "sec/op")
			cookie, ok2 := value(rows, "APIAuth/cookie_session", "sec/op")
			if !ok1 || !ok2 {
				return "", false, false
			}
			d := bearer - cookie
			return fmt.Sprintf("%+.2f ms", d*1e3), d <= 0.2e-3, true
		},
	},
}

func atMost(bench, unit string, limit float64) func(map[string]*row) (string, bool, bool) {
	return func(rows map[string]*row) (string, bool, bool) {
		v, ok := value(rows, bench, unit)
		if !ok {
			return "", false, false
		}
		return format(unit, v), v <= limit, true
	}
}

func value(rows map[string]*row, bench, unit string) (float64, bool) {
	r, ok := rows[bench]
	if !ok {
		return 0, false
	}
	v, ok := r.values[unit]
	return v, ok
}

func main() {
	missed, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(2)
	}
	if missed > 0 {
		os.Exit(1)
	}
}

// run reads benchmark output from in, echoing the lines that are not
// results (test failures, logs) to out as they come, then writes the table;
// it returns how many goals were missed or could not be checked.
func run(in io.Reader, out io.Writer) (missed int, err error) {
	var order []string
	rows := map[string]*row{}
	pr, pw := io.Pipe()
	go func() {
		// Lines benchfmt skips (FAIL, panics, t.Log) must still be seen.
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "Benchmark") && !isConfigLine(line) && !strings.HasPrefix(line, "PASS") && !strings.HasPrefix(line, "ok ") {
				fmt.Fprintln(out, line)
			}
			fmt.Fprintln(pw, line)
		}
		pw.CloseWithError(sc.Err())
	}()
	rd := benchfmt.NewReader(pr, "stdin")
	for rd.Scan() {
		res, ok := rd.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		r := &row{pkg: res.GetConfig("pkg"), name: baseName(res.Name), iters: res.Iters, values: map[string]float64{}}
		for _, v := range res.Values {
			r.values[v.Unit] = v.Value
			r.units = append(r.units, v.Unit)
		}
		if _, seen := rows[r.name]; !seen {
			order = append(order, r.name)
		}
		rows[r.name] = r
	}
	if err := rd.Err(); err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, fmt.Errorf("no benchmark results in the input")
	}

	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "package\tbenchmark\ttime/op\tB/op\tallocs/op\tother\tgoal\t")
	for _, name := range order {
		r := rows[name]
		g, verdict := goalFor(name, rows)
		if strings.HasPrefix(verdict, "MISSED") {
			missed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", shortPkg(r.pkg), name,
			r.format("sec/op"), r.format("B/op"), r.format("allocs/op"), r.others(), strings.TrimSpace(g+" "+verdict))
	}
	if err := tw.Flush(); err != nil {
		return 0, err
	}
	for _, g := range goals {
		if _, ok := rows[g.bench]; !ok {
			missed++
			fmt.Fprintf(out, "goal %q of Benchmark%s: not checked, the benchmark did not run\n", g.text, g.bench)
		}
	}
	return missed, nil
}

func goalFor(name string, rows map[string]*row) (text, verdict string) {
	for _, g := range goals {
		if g.bench != name {
			continue
		}
		figure, met, ok := g.check(rows)
		switch {
		case !ok:
			return g.text, "NOT CHECKED"
		case met:
			return g.text, "met (" + figure + ")"
		default:
			return g.text, "MISSED (" + figure + ")"
		}
	}
	return "", ""
}

func (r *row) format(unit string) string {
	v, ok := r.values[unit]
	if !ok {
		return "-"
	}
	return format(unit, v)
}

// others lists the benchmark's own metrics, beyond time and memory.
func (r *row) others() string {
	var parts []string
	for _, u := range r.units {
		if slices.Contains([]string{"sec/op", "B/op", "allocs/op"}, u) {
			continue
		}
		parts = append(parts, format(u, r.values[u])+" "+u)
	}
	return strings.Join(parts, ", ")
}

// format scales a value by its unit's class (benchstat's own scaling), and
// writes seconds as s, ms, µs or ns.
func format(unit string, v float64) string {
	if strings.HasSuffix(unit, "sec/op") {
		switch {
		case v >= 1:
			return fmt.Sprintf("%.2f s", v)
		case v >= 1e-3:
			return fmt.Sprintf("%.2f ms", v*1e3)
		case v >= 1e-6:
			return fmt.Sprintf("%.1f µs", v*1e6)
		default:
			return fmt.Sprintf("%.0f ns", v*1e9)
		}
	}
	return benchunit.Scale(v, benchunit.ClassOf(unit))
}

// baseName is the benchmark's name without the -GOMAXPROCS suffix.
func baseName(n benchfmt.Name) string {
	base, parts := n.Parts()
	name := string(base)
	for _, p := range parts {
		if strings.HasPrefix(string(p), "-") {
			continue
		}
		name += string(p)
	}
	return name
}

func shortPkg(pkg string) string {
	if i := strings.Index(pkg, "/internal/"); i >= 0 {
		return pkg[i+len("/internal/"):]
	}
	return pkg
}

// isConfigLine reports whether line is a "key: value" line of the
// benchmark format (goos, goarch, pkg, cpu), which the table replaces.
func isConfigLine(line string) bool {
	key, _, ok := strings.Cut(line, ": ")
	return ok && key != "" && !strings.ContainsAny(key, " \t") && strings.ToLower(key[:1]) == key[:1]
}
