package portal

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"regexp"
	"strings"
)

// Secrets people paste by mistake: a private key where a public one or a
// sentence belongs, or the password of an issued credential. Whatever the
// portal stores of free text also goes into the audit log, which keeps every
// row for good, so both are refused before anything is stored.

// privateKeyPrefixes are the beginnings of private keys, in upper case:
// age secret keys and PuTTY key files.
var privateKeyPrefixes = [][]byte{[]byte("AGE-SECRET-KEY-"), []byte("PUTTY-USER-KEY-FILE-")}

// After one of these, the rest of an age plugin identity
// (AGE-PLUGIN-YUBIKEY-1…) and of a PEM or OpenSSH armor line ("-----BEGIN
// OPENSSH PRIVATE KEY-----"), in upper case.
var (
	agePluginRest = regexp.MustCompile(`^[A-Z0-9+._-]*-1`)
	pemBeginRest  = regexp.MustCompile(`^[A-Z0-9 ]*PRIVATE KEY`)
)

// openSSHBody is how the base64 body of every OpenSSH private key begins
// ("openssh-key-v1\x00"), whatever its key type; wrapped at 70 columns, it
// is always whole on the body's first line.
const openSSHBody = "b3BlbnNzaC1rZXktdjE"

// ContainsPrivateKey reports whether text holds private key material: the
// armor or prefix of a known format (age, OpenSSH, PEM, PuTTY) anywhere and
// in any case, or the base64 body of an OpenSSH key or of a DER private key
// (PKCS #8 of any algorithm, PKCS #1 RSA, SEC 1 EC, DSA) pasted without its
// armor: wrapped or not, in standard or URL-safe base64, padded or not, alone
// or among other words and quote marks.
func ContainsPrivateKey(text string) bool {
	return containsKeyArmor(asciiUpper(text)) || strings.Contains(text, openSSHBody) || containsDERPrivateKey(text)
}

// containsKeyArmor reports whether upper, a text in upper case, holds the
// armor or prefix of a private key. Matching anywhere is deliberate: a key
// file pasted whole has comments before the key. Literal searches rather
// than one regular expression keep a long text's scan fast.
func containsKeyArmor(upper []byte) bool {
	for _, p := range privateKeyPrefixes {
		if bytes.Contains(upper, p) {
			return true
		}
	}
	for rest := upper; ; {
		i := bytes.Index(rest, []byte("AGE-PLUGIN-"))
		if i < 0 {
			break
		}
		rest = rest[i+len("AGE-PLUGIN-"):]
		if agePluginRest.Match(rest) {
			return true
		}
	}
	// "----BEGIN", "-----BEGIN" or "---- BEGIN", then the key's kind.
	for rest := upper; ; {
		i := bytes.Index(rest, []byte("BEGIN "))
		if i < 0 {
			return false
		}
		before := bytes.TrimSuffix(rest[:i], []byte(" "))
		rest = rest[i+len("BEGIN "):]
		if bytes.HasSuffix(before, []byte("----")) && pemBeginRest.Match(rest) {
			return true
		}
	}
}

// asciiUpper is text with a–z in upper case and every other byte as it is.
func asciiUpper(text string) []byte {
	b := []byte(text)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return b
}

// Bounds of the DER bodies looked for: an Ed25519 or X25519 key in PKCS #8 is
// 48 bytes, a 16384-bit RSA key about 9,400.
const (
	minKeyDER = 40
	maxKeyDER = 16 << 10
	// maxKeyCandidates bounds the work on text made to look like many key
	// bodies: people paste one key by mistake, not dozens.
	maxKeyCandidates = 32
)

// containsDERPrivateKey looks for the base64 body of a DER private key in
// text. Every such key is a SEQUENCE whose first element is the version, an
// INTEGER 0 or 1: its base64 starts with "M", and its first nine bytes give
// its length. Each run of base64 characters that starts so is decoded for
// that length, across line breaks and whatever else separates the lines,
// and parsed.
func containsDERPrivateKey(text string) bool {
	if len(text) < minKeyDER*4/3 {
		return false
	}
	// The base64 characters of text in order, URL-safe ones made standard,
	// padding dropped, and where each run of them starts.
	stream := make([]byte, 0, len(text))
	var starts []int
	inRun := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
		case c == '-':
			c = '+'
		case c == '_':
			c = '/'
		default:
			inRun = false
			continue
		}
		if !inRun && c == 'M' {
			starts = append(starts, len(stream))
		}
		inRun = true
		stream = append(stream, c)
	}
	candidates := 0
	var head [9]byte
	for _, at := range starts {
		if len(stream)-at < len(head)*4/3 {
			break
		}
		if _, err := base64.StdEncoding.Decode(head[:], stream[at:at+len(head)*4/3]); err != nil {
			continue
		}
		size, ok := derKeyLength(head[:])
		if !ok {
			continue
		}
		if candidates++; candidates > maxKeyCandidates {
			return false
		}
		need := (size*4 + 2) / 3 // base64 characters of size bytes, unpadded
		if len(stream)-at < need {
			continue // cut short: not a whole key
		}
		der, err := base64.RawStdEncoding.DecodeString(string(stream[at : at+need]))
		if err == nil && isPrivateKeyDER(der) {
			return true
		}
	}
	return false
}

// derKeyLength reads the first bytes of what may be a DER private key: a
// SEQUENCE whose first element is an INTEGER 0 or 1. It returns the whole
// encoding's length, and false when head does not begin so or the length is
// not that of a key.
func derKeyLength(head []byte) (int, bool) {
	if head[0] != 0x30 {
		return 0, false
	}
	var n, hdr int
	switch l := head[1]; {
	case l < 0x80:
		n, hdr = int(l), 2
	case l == 0x81:
		n, hdr = int(head[2]), 3
	case l == 0x82:
		n, hdr = int(head[2])<<8|int(head[3]), 4
	default:
		return 0, false
	}
	if head[hdr] != 0x02 || head[hdr+1] != 0x01 || head[hdr+2] > 1 {
		return 0, false
	}
	if size := hdr + n; size >= minKeyDER && size <= maxKeyDER {
		return size, true
	}
	return 0, false
}

// isPrivateKeyDER reports whether der is a private key by its structure
// alone, so that algorithms Go's x509 does not know count too: PKCS #8
// (RFC 5958: version, algorithm, key), SEC 1 (version 1, key), or PKCS #1
// RSA and DSA (version 0 and the key's integers).
func isPrivateKeyDER(der []byte) bool {
	var p8 struct {
		Version   int
		Algorithm pkix.AlgorithmIdentifier
		Key       []byte
	}
	if rest, err := asn1.Unmarshal(der, &p8); err == nil && len(rest) == 0 && len(p8.Key) > 0 {
		return true
	}
	var sec1 struct {
		Version int
		Key     []byte
	}
	if rest, err := asn1.Unmarshal(der, &sec1); err == nil && len(rest) == 0 && sec1.Version == 1 && len(sec1.Key) > 0 {
		return true
	}
	var ints []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &ints); err != nil || len(rest) != 0 || len(ints) < 6 {
		return false
	}
	for _, v := range ints {
		if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagInteger {
			return false
		}
	}
	return true
}

// issuedPasswordLen is the length of an issued credential's password:
// issue.NewPassword draws 26 base32 characters (A–Z, 2–7), 130 bits.
const issuedPasswordLen = 26

// ContainsIssuedPassword reports whether text holds a word shaped like the
// password of an issued credential: exactly 26 characters of base32 (A–Z and
// 2–7) between characters that are not letters or digits, of at least 8
// different characters. Prose has no such word: the longest English words
// in capitals are 27 letters and more, identifiers such as ULIDs hold 0, 1,
// 8 or 9 or lower case, and the 8 different characters (which any real
// password has, but for a chance of about 1 in 10^10) leave out a row of one
// letter typed for emphasis.
func ContainsIssuedPassword(text string) bool {
	run := 0 // letters and digits so far in the current word
	ok := true
	for i := 0; i <= len(text); i++ {
		var c byte
		if i < len(text) {
			c = text[i]
		}
		switch {
		case 'A' <= c && c <= 'Z', '2' <= c && c <= '7':
			run++
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			run++
			ok = false
		default:
			if run == issuedPasswordLen && ok && distinct(text[i-run:i]) >= 8 {
				return true
			}
			run, ok = 0, true
		}
	}
	return false
}

// distinct is the number of different bytes in s.
func distinct(s string) int {
	var seen [256]bool
	n := 0
	for i := 0; i < len(s); i++ {
		if !seen[s[i]] {
			seen[s[i]] = true
			n++
		}
	}
	return n
}
