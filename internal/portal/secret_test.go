package portal

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// privateKeys are private keys in every form the portal must recognise, by
// name; each is fresh.
func privateKeys(t *testing.T) map[string]string {
	t.Helper()
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	openssh, err := ssh.MarshalPrivateKey(ed, "alice@laptop")
	if err != nil {
		t.Fatal(err)
	}
	edPKCS8, err := x509.MarshalPKCS8PrivateKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPKCS8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	edPEM := pemBlock("PRIVATE KEY", edPKCS8)
	return map[string]string{
		"age secret key":                           x.String(),
		"age secret key in lower case":             strings.ToLower(x.String()),
		"OpenSSH private key":                      string(pem.EncodeToMemory(openssh)),
		"OpenSSH body without armor":               pemBody(string(pem.EncodeToMemory(openssh))),
		"OpenSSH body, first line only":            strings.Split(pemBody(string(pem.EncodeToMemory(openssh))), "\n")[0],
		"PKCS #8 Ed25519 private key":              edPEM,
		"PKCS #8 Ed25519 body":                     pemBody(edPEM),
		"PKCS #8 Ed25519 body, URL-safe":           base64.RawURLEncoding.EncodeToString(edPKCS8),
		"PKCS #8 Ed25519 body, padded URL-safe":    base64.URLEncoding.EncodeToString(edPKCS8),
		"PKCS #8 Ed25519 body in a sentence":       "our key is " + pemBody(edPEM) + ", is that what you need?",
		"PKCS #8 RSA body, wrapped":                pemBody(pemBlock("PRIVATE KEY", rsaPKCS8)),
		"PKCS #8 RSA body, URL-safe, wrapped":      wrap(base64.URLEncoding.EncodeToString(rsaPKCS8), 64),
		"PKCS #8 RSA body quoted in a reply":       "> " + strings.ReplaceAll(pemBody(pemBlock("PRIVATE KEY", rsaPKCS8)), "\n", "\n> "),
		"PKCS #1 RSA body":                         pemBody(pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))),
		"SEC 1 EC body":                            pemBody(pemBlock("EC PRIVATE KEY", ecDER)),
		"PKCS #8 EC body, CRLF line ends":          strings.ReplaceAll(pemBody(pemBlock("PRIVATE KEY", ecPKCS8)), "\n", "\r\n"),
		"encrypted PKCS #8 private key":            pemBlock("ENCRYPTED PRIVATE KEY", rsaPKCS8),
		"PuTTY private key":                        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
		"age plugin identity":                      "AGE-PLUGIN-YUBIKEY-1QYQSZQGPQYQSZQGPQYQSZQGP",
		"PKCS #8 Ed25519 body after a long reason": strings.Repeat("We need this for the dashboards. ", 20) + base64.StdEncoding.EncodeToString(edPKCS8),
	}
}

func pemBlock(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// pemBody is a PEM block without its BEGIN and END lines, as someone might
// copy it.
func pemBody(block string) string {
	lines := strings.Split(strings.TrimSpace(block), "\n")
	return strings.Join(lines[1:len(lines)-1], "\n")
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

// TestFreeTextRefusesEveryPrivateKeyForm: a private key pasted into any
// free-text field, in any of the forms people copy it in, is refused as a
// secret, whatever else is wrong with the text.
func TestFreeTextRefusesEveryPrivateKeyForm(t *testing.T) {
	t.Parallel()
	for name, key := range privateKeys(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Too long and holding a NUL as well: the secret is what is said.
			for _, text := range []string{key, "see below\n" + key + "\x00" + strings.Repeat("x", 3000)} {
				got, err := CleanText("reason", text, 2000)
				var e *Error
				if !errors.As(err, &e) || !e.Secret || e.Field != "reason" || !strings.Contains(e.Message, "PRIVATE key") {
					t.Fatalf("CleanText = %q, %v; want a Secret refusal of reason", got, err)
				}
				if got != "" {
					t.Errorf("CleanText returned %q with the refusal", got)
				}
				for _, w := range strings.Fields(key) {
					if len(w) >= 20 && strings.Contains(e.Message, w) {
						t.Errorf("the message repeats %q", w)
					}
				}
			}
		})
	}
}

// TestOrdinaryTextIsNotTakenForASecret: what people write in a
// justification or a note, with the long words, base64 and identifiers they
// paste, passes.
func TestOrdinaryTextIsNotTakenForASecret(t *testing.T) {
	t.Parallel()
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ed, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 300)
	rand.Read(random)
	texts := map[string]string{
		"prose":            "Grafana dashboards of hub usage for our steering committee, Monday to Friday.",
		"long words":       "MICROBIOLOGICALLY Mississippians Magnetohydrodynamics MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM",
		"age public key":   x.Recipient().String(),
		"ssh public key":   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " alice@laptop",
		"PEM public key":   pemBlock("PUBLIC KEY", spki),
		"public key body":  pemBody(pemBlock("PUBLIC KEY", spki)),
		"random base64":    base64.StdEncoding.EncodeToString(random),
		"random, M first":  "M" + base64.StdEncoding.EncodeToString(random),
		"sha256 hex":       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"fingerprint":      "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
		"ULID":             "01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"UUID in capitals": "123E4567-E89B-12D3-A456-426614174000",
		"URL":              "https://prometheus.awi-ciroh.2i2c.cloud/api/v1/query?query=up",
		"username":         "c-abcdefghij",
		"shouting":         "PLEASE APPROVE THIS QUICKLY, AAAAAAAAAAAAAAAAAAAAAAAAAA ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
		"bcrypt hash":      "$2a$05$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
		"JWT":              "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
	}
	for name, text := range texts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := CleanText("note", text, 2000); err != nil {
				t.Errorf("CleanText(%q) = %v, want it accepted", text, err)
			}
		})
	}
}

// TestFreeTextRefusesAnIssuedPassword: a word shaped like an issued
// password (26 characters of A–Z and 2–7) is refused as a secret wherever it
// stands; one character more or less, or one outside the alphabet, is an
// ordinary word.
func TestFreeTextRefusesAnIssuedPassword(t *testing.T) {
	t.Parallel()
	const pw = "JBSWY3DPEHPK3PXPJBSWY3DPEH"
	tests := []struct {
		name, text string
		secret     bool
	}{
		{"alone", pw, true},
		{"in a sentence", "I pasted " + pw + " in a public chat.", true},
		{"after a colon", "password:" + pw, true},
		{"in a curl example", "curl -u c-abcdefghij:" + pw + " https://prometheus.x.2i2c.cloud", true},
		{"quoted", `"` + pw + `"`, true},
		{"one character short", pw[:25], false},
		{"one character more", pw + "Q", false},
		{"with a lower-case letter", "j" + pw[1:], false},
		{"with a 0", "0" + pw[1:], false},
		{"with an 8", pw[:25] + "8", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := CleanText("details", tt.text, 500)
			var e *Error
			got := errors.As(err, &e) && e.Secret
			if got != tt.secret {
				t.Fatalf("CleanText(%q) = %v; secret %v, want %v", tt.text, err, got, tt.secret)
			}
			if got && (strings.Contains(e.Message, pw) || !strings.Contains(e.Message, "password") || e.Field != "details") {
				t.Errorf("message %q", e.Message)
			}
		})
	}
}

// BenchmarkContainsPrivateKey times the check on the largest text a request
// body can hold (64 KiB): prose, and words made to pass the first look at a
// key body (a DER SEQUENCE of 9 KB starting with a version) so that each is
// decoded.
func BenchmarkContainsPrivateKey(b *testing.B) {
	for _, in := range []struct{ name, text string }{
		{"prose", strings.Repeat("Grafana dashboards of hub usage for our steering committee. ", 64<<10/61)},
		{"key-like words", strings.Repeat("MIIkQwIBADANBgkqhkiG9w0BAQEFAASC ", 64<<10/33)},
	} {
		b.Run(in.name, func(b *testing.B) {
			for b.Loop() {
				if ContainsPrivateKey(in.text) {
					b.Fatal("taken for a key")
				}
			}
		})
	}
}
