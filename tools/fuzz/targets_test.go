package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEveryFuzzTargetIsListed finds every fuzz function (func FuzzX(f
// *testing.F) in a _test.go file) in the repository's module and fails
// if one is missing from targets, so that make fuzz cannot forget a new
// one, or if targets names one that does not exist. Nested modules
// (deploy/test) and testdata are not the portal's module and are skipped.
func TestEveryFuzzTargetIsListed(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the repository root is not at %s: %v", root, err)
	}
	var found []target
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); path != root && err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		for _, decl := range file.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && isFuzzTarget(fn) {
				found = append(found, target{pkg: "./" + filepath.ToSlash(rel), name: fn.Name.Name})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		t.Fatal("found no fuzz target at all: the search is broken")
	}
	// in reports whether list holds t's function, whatever its count.
	in := func(list []target, t target) bool {
		return slices.ContainsFunc(list, func(l target) bool { return l.pkg == t.pkg && l.name == t.name })
	}
	for _, f := range found {
		if !in(targets, f) {
			t.Errorf("%s in %s is not in the targets of tools/fuzz/main.go: make fuzz would never run it", f.name, f.pkg)
		}
	}
	for _, l := range targets {
		if !in(found, l) {
			t.Errorf("tools/fuzz/main.go lists %s in %s, which does not exist", l.name, l.pkg)
		}
		if l.execs <= 0 {
			t.Errorf("tools/fuzz/main.go gives %s no count of executions: make fuzz would pass -fuzztime 0x", l.name)
		}
	}
}

// isFuzzTarget reports whether fn is what go test -fuzz runs: a function
// named Fuzz… taking one *testing.F.
func isFuzzTarget(fn *ast.FuncDecl) bool {
	if fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Fuzz") || len(fn.Type.Params.List) != 1 {
		return false
	}
	star, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "F"
}
