package server

import (
	"fmt"
	"html/template"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
)

// renderedRows is how many rendered rows a replica keeps: a kilobyte or
// less each, so at most about 16 MB. A busy customer's dashboard alone is
// 60 rows (50 credentials, 10 requests) and every session has a header of
// its own; 4,096 rows were outgrown by 50 customers browsing at once, whose
// rows then pushed each other out.
const renderedRows = 16_384

// rowKey is a rendered row's key: the page whose template set defines it,
// the row's template, and every value the row prints.
type rowKey struct {
	page, name string
	data       any
}

// rowCache keeps rows of lists already rendered. A list page repeats its
// rows from one view to the next, and each costs html/template about twenty
// reflected calls (a field read, an escaper) of the same values every time.
// A row is a function of its template and its values alone, so it is kept
// under both: a credential that changes, or a row now showing another
// state or time, is another key, and the old one ages out. Nothing is
// invalidated, on this replica or another, and no row is shared that
// another person's values would not render the same.
type rowCache struct {
	rows *lru.Cache[rowKey, template.HTML]
}

func newRowCache(size int) *rowCache {
	rows, err := lru.New[rowKey, template.HTML](size)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &rowCache{rows: rows}
}

// renderRow renders the template called name, defined by page's template
// set, for data, or returns what it rendered before for equal data. data is
// a row's values, comparable so that they can be the key: strings, numbers,
// bools, template.HTML. The template must start and end in the HTML text of
// an element's content (a table's body, a list), where its output is then
// printed.
func renderRow[T comparable](s *Server, page, name string, data T) (template.HTML, error) {
	k := rowKey{page: page, name: name, data: data}
	if h, ok := s.rowCache.rows.Get(k); ok {
		return h, nil
	}
	set, ok := s.pages.sets[page]
	if !ok {
		return "", fmt.Errorf("render %s: no page %q", name, page)
	}
	var b strings.Builder
	if err := set.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render %s of %s: %w", name, page, err)
	}
	h := template.HTML(b.String()) //nolint:gosec // html/template's own output, escaped for where it is printed
	s.rowCache.rows.Add(k, h)
	return h, nil
}

// renderRows renders each of rows with renderRow, one after the other, as
// one piece the page prints with one action: "" for none.
func renderRows[T comparable](s *Server, page, name string, rows []T) (template.HTML, error) {
	rendered := make([]template.HTML, len(rows))
	size := 0
	for i, r := range rows {
		h, err := renderRow(s, page, name, r)
		if err != nil {
			return "", err
		}
		rendered[i], size = h, size+len(h)
	}
	var b strings.Builder
	b.Grow(size)
	for _, h := range rendered {
		b.WriteString(string(h))
	}
	return template.HTML(b.String()), nil //nolint:gosec // rendered by html/template
}
