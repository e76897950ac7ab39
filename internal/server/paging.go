package server

import (
	"net/url"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// pageQuery reads which page of a list a request asks for: the cursor in
// the query parameter param (each list on a page has its own, the API's is
// "cursor") and the shared "limit". Returns an Error of portal.KindInvalid
// naming the parameter at fault.
func (cl call) pageQuery(param string) (portal.PageQuery, error) {
	return portal.ParsePageQuery(param, cl.c.QueryParam(param), cl.c.QueryParam("limit"))
}

// pager is the links under one paged list of a page: back to its start, and
// on to its next page, each keeping the page's other parameters (a filter,
// the limit, another list's cursor).
type pager struct {
	Label     string // what the links page through, for the navigation's name
	StartText string // "Newest", or "First" for a list oldest first
	NextText  string // "Older", or "Next"
	Start     string // "" on the first page
	Next      string // "" on the last page
}

// newPager makes the pager of the list whose cursor is param, on the page
// at path with query, given the next page's cursor ("" on the last).
func newPager(label, path string, query url.Values, param, next string, oldestFirst bool) pager {
	p := pager{Label: label, StartText: "Newest", NextText: "Older"}
	if oldestFirst {
		p.StartText, p.NextText = "First", "Next"
	}
	link := func(cursor string) string {
		v := url.Values{}
		for k, vs := range query {
			if k != param {
				v[k] = vs
			}
		}
		if cursor != "" {
			v.Set(param, cursor)
		}
		if len(v) == 0 {
			return path
		}
		return path + "?" + v.Encode()
	}
	if query.Get(param) != "" {
		p.Start = link("")
	}
	if next != "" {
		p.Next = link(next)
	}
	return p
}

// pageJSON is one page of a list as the API shows it: {key: [...],
// "next_cursor": …}, the list never null, next_cursor null on the last page.
func pageJSON[T, J any](key string, view func(T) J) func(*portal.Page[T], error) (any, error) {
	return func(p *portal.Page[T], err error) (any, error) {
		if err != nil {
			return nil, err
		}
		out := make([]J, 0, len(p.Items))
		for _, v := range p.Items {
			out = append(out, view(v))
		}
		var next *string
		if p.Next != "" {
			next = &p.Next
		}
		return map[string]any{key: out, "next_cursor": next}, nil
	}
}
