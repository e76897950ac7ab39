package portal

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CleanText checks text a person typed for field: it must hold no private
// key and no issued credential's password, be valid UTF-8 without NUL, other
// control characters (line breaks and tabs aside) or bidirectional controls,
// and be at most max characters once trimmed. It returns the trimmed text,
// or an Error of KindInvalid saying what to fix. PostgreSQL refuses NUL and
// invalid UTF-8, and nothing legitimate needs them; bidirectional controls
// make text show in another order than it is stored (a reason that reads
// one way on the revocation list and another in the log). A secret is
// refused first, whatever else is wrong, so that no other message hides that
// it was exposed; that Error is marked Secret, so the value is never shown
// back.
func CleanText(field, text string, max int) (string, error) {
	switch {
	case ContainsPrivateKey(text):
		return "", &Error{Kind: KindInvalid, Field: field, Secret: true, Message: "This holds a PRIVATE key, " +
			"which must never be shared with anyone, 2i2c included. The portal has not stored it. " +
			"As it has left your computer, treat it as exposed: make a new key pair (for age, " +
			`"age-keygen -o key.txt") and share only its public key. Then send this again without the key.`}
	case ContainsIssuedPassword(text):
		return "", &Error{Kind: KindInvalid, Field: field, Secret: true, Message: "This holds what looks like the " +
			"password of a credential (26 capital letters and digits). A password never belongs here, and " +
			"the portal has not stored it. If it is a credential's password, report that credential " +
			"compromised; then send this again without the password."}
	}
	if !utf8.ValidString(text) {
		return "", Invalid(field, "This holds bytes that are not text (not UTF-8). Type or paste it again as plain text.")
	}
	for _, r := range text {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return "", Invalid(field, "This holds a control character (%U). Type or paste it again as plain text.", r)
		}
		if isBidiControl(r) {
			return "", Invalid(field, "This holds an invisible character that changes the direction of text "+
				"(%U), which can make it show differently from what it says. Type it again without it.", r)
		}
	}
	text = strings.TrimSpace(text)
	if n := utf8.RuneCountInString(text); n > max {
		return "", Invalid(field, "The %s can be at most %d characters, not %d.", fieldLabel(field), max, n)
	}
	return text, nil
}

// fieldLabel is how a message names field, which a form's label says in
// its own words: a message shown at the top of a form, or by the API, must
// say which field it is about.
func fieldLabel(field string) string {
	if field == "q" {
		return "text to search for"
	}
	return strings.ReplaceAll(field, "_", " ")
}

// CleanLine is CleanText for a value that must stay on one line, such as a
// name written into a file: line breaks and tabs are refused too.
func CleanLine(field, text string, max int) (string, error) {
	if strings.ContainsAny(text, "\r\n\t") {
		return "", Invalid(field, "This must be a single line, without line breaks or tabs.")
	}
	return CleanText(field, text, max)
}

// isBidiControl reports whether r is one of Unicode's bidirectional
// formatting characters: the embeddings and overrides (U+202A–U+202E), the
// isolates (U+2066–U+2069) and the marks (U+200E, U+200F, U+061C).
func isBidiControl(r rune) bool {
	return '\u202A' <= r && r <= '\u202E' || '\u2066' <= r && r <= '\u2069' ||
		r == '\u200E' || r == '\u200F' || r == '\u061C'
}

// Printable returns s as valid UTF-8 without control characters or
// bidirectional controls, cut to at most max bytes, for values taken from
// request headers (user agents) that are kept but not typed by anyone the
// portal must answer.
func Printable(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || isBidiControl(r) {
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
