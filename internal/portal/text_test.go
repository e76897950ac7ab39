package portal

import (
	"errors"
	"fmt"
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

// TestFreeTextRefusesBidiControls: the characters that make text show in
// another order than it is stored are refused with a message naming the
// character; Printable drops them from header values.
func TestFreeTextRefusesBidiControls(t *testing.T) {
	t.Parallel()
	for _, r := range []rune{0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C} {
		text := "revoked: project ended " + string(r) + "dne tcejorp"
		_, err := CleanText("reason", text, 500)
		var e *Error
		if !errors.As(err, &e) || e.Field != "reason" || e.Secret ||
			!strings.Contains(e.Message, fmt.Sprintf("%U", r)) || !strings.Contains(e.Message, "direction") {
			t.Errorf("CleanText with %U = %v; want a refusal naming it", r, err)
		}
		if got := Printable("curl/8.5.0"+string(r), 100); got != "curl/8.5.0" {
			t.Errorf("Printable kept %U: %q", r, got)
		}
	}
	// Right-to-left script itself is text like any other.
	for _, text := range []string{"لوحات المعلومات لفريق البحث", "לוחות מחוונים לצוות המחקר"} {
		if _, err := CleanText("justification", text, 500); err != nil {
			t.Errorf("CleanText(%q) = %v", text, err)
		}
	}
}
