package portal

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"plain", "  Grafana\nok  ", "Grafana\nok", true},
		{"tabs and CRLF", "a\tb\r\nc", "a\tb\r\nc", true},
		{"NUL", "abc\x00def", "", false},
		{"escape", "abc\x1bdef", "", false},
		{"not UTF-8", "caf\xe9", "", false},
		{"too long", strings.Repeat("é", 11), "", false},
		{"at the limit", strings.Repeat("é", 10), strings.Repeat("é", 10), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanText("field", tt.in, 10)
			if tt.ok && (err != nil || got != tt.want) {
				t.Errorf("CleanText(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			var inv *Error
			if !tt.ok && (!errors.As(err, &inv) || inv.Field != "field") {
				t.Errorf("CleanText(%q) = %q, %v; want an Error on field", tt.in, got, err)
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	t.Parallel()
	if got := Printable("caf\xe9-client/1.0\x00\n", 100); got != "caf\uFFFD-client/1.0" {
		t.Errorf("Printable = %q", got)
	}
	long := strings.Repeat("é", 600)
	if got := Printable(long, 512); len(got) > 512+len("…") || !utf8.ValidString(got) {
		t.Errorf("Printable of a long value: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}
