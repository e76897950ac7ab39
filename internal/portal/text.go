package portal

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CleanText checks text a person typed for field: it must be valid UTF-8
// without NUL or other control characters (line breaks and tabs aside), and
// at most max characters once trimmed. It returns the trimmed text, or an
// Error of KindInvalid saying what to fix. PostgreSQL refuses such bytes, and
// nothing legitimate needs them.
func CleanText(field, text string, max int) (string, error) {
	if !utf8.ValidString(text) {
		return "", Invalid(field, "This holds bytes that are not text (not UTF-8). Type or paste it again as plain text.")
	}
	for _, r := range text {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return "", Invalid(field, "This holds a control character (%U). Type or paste it again as plain text.", r)
		}
	}
	text = strings.TrimSpace(text)
	if n := utf8.RuneCountInString(text); n > max {
		return "", Invalid(field, "This can be at most %d characters, not %d.", max, n)
	}
	return text, nil
}

// CleanLine is CleanText for a value that must stay on one line, such as a
// name written into a file: line breaks and tabs are refused too.
func CleanLine(field, text string, max int) (string, error) {
	if strings.ContainsAny(text, "\r\n\t") {
		return "", Invalid(field, "This must be a single line, without line breaks or tabs.")
	}
	return CleanText(field, text, max)
}

// Printable returns s as valid UTF-8 without control characters, cut to at
// most max bytes, for values taken from request headers (user agents) that
// are kept but not typed by anyone the portal must answer.
func Printable(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
