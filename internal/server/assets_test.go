package server

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestStaticFilesAreCached(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	home := b.get("/")
	m := regexp.MustCompile(`href="(/static/style\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(home.Body)
	if m == nil {
		t.Fatalf("no versioned stylesheet link on the page:\n%s", home.Body)
	}
	r := b.get(m[1])
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") {
		t.Errorf("versioned stylesheet: %d %v", r.StatusCode, r.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, p.URL+m[1], nil)
	req.Header.Set("If-None-Match", r.Header.Get("ETag"))
	if r := b.do(req); r.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: %d, want 304", r.StatusCode)
	}
	if r := b.get("/static/style.css"); !strings.Contains(r.Header.Get("Cache-Control"), "max-age=300") {
		t.Errorf("unversioned stylesheet: Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	if r := b.get("/static/nope.css"); r.StatusCode != http.StatusNotFound {
		t.Errorf("missing static file: %d", r.StatusCode)
	}
}
