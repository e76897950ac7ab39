package portal

import (
	"errors"
	"testing"
	"time"
)

func TestPageCursorRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 14, 0, 0, 123456000, time.UTC)
	for _, c := range []PageCursor{{At: at, ID: 7}, {Name: "awi-ciroh", ID: 3}, {At: at, ID: 1 << 62}} {
		got, err := ParsePageCursor("cursor", c.Encode())
		if err != nil || !got.At.Equal(c.At) || got.ID != c.ID || got.Name != c.Name {
			t.Errorf("%+v came back as %+v, %v", c, got, err)
		}
	}
	if c, err := ParsePageCursor("cursor", ""); c != nil || err != nil {
		t.Errorf("no cursor: %+v, %v; want the first page", c, err)
	}
}

func TestParsePageQueryRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, cursor, limit, field string }{
		{"limit zero", "", "0", "limit"},
		{"limit over the page", "", "101", "limit"},
		{"limit not a number", "", "ten", "limit"},
		{"limit with a fraction", "", "2.5", "limit"},
		{"cursor not base64url", "!!", "", "after"},
		{"cursor without an id", "MTIz", "", "after"},
		{"cursor with a zero id", PageCursor{ID: 0}.Encode(), "", "after"},
		{"cursor with a name no cluster has", "MToxOkJhZCBOYW1l", "", "after"},
		{"cursor past year 9999", "MjUzNDAyMzAwODAwMDAwMDAwOjU", "", "after"},
		{"cursor at the end of int64", "OTIyMzM3MjAzNjg1NDc3NTgwNzo1", "", "after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePageQuery("after", tt.cursor, tt.limit)
			var pe *Error
			if !errors.As(err, &pe) || pe.Kind != KindInvalid || pe.Field != tt.field || pe.Message == "" {
				t.Errorf("%v, want a refusal of %s with a message", err, tt.field)
			}
		})
	}
	if q, err := ParsePageQuery("cursor", "", ""); err != nil || q.Limit != DefaultPageSize || q.After != nil {
		t.Errorf("no parameters: %+v, %v; want the first page of %d", q, err, DefaultPageSize)
	}
}

func TestCountSaysWhenCapped(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 12: "12", 1000: "1,000", 1001: "more than 1,000"} {
		if got := NewCount(n).String(); got != want {
			t.Errorf("NewCount(%d) = %q, want %q", n, got, want)
		}
	}
}
