package issue

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// Recipients of age plugins, shaped as the plugins print them (Bech32 with a
// compressed P-256 point). The portal refuses them by their prefix.
const (
	yubikeyRecipient = "age1yubikey1qgheyj0fruran7mugh5kf4fjg453mphrwlnl6s6vp48jj99y3099qfgnrv2"
	tagRecipient     = "age1tag1qgheyj0fruran7mugh5kf4fjg453mphrwlnl6s6vp48jj99y3099qr2vn0e"
)

// testKey is a key pair as a customer would have it: the public key as
// pasted, and what decrypts for it.
type testKey struct {
	typ      portal.KeyType
	public   string // one line, as a customer pastes it
	identity age.Identity
}

// newTestKeys returns a fresh key pair of every accepted type.
func newTestKeys(tb testing.TB) []testKey {
	tb.Helper()
	x := generate(tb, age.GenerateX25519Identity)
	pq := generate(tb, age.GenerateHybridIdentity)
	edPub, edPriv := newEd25519Key(tb)
	edID, err := agessh.NewEd25519Identity(edPriv)
	if err != nil {
		tb.Fatal(err)
	}
	rsaPriv := newRSAKey(tb, 2048)
	rsaID, err := agessh.NewRSAIdentity(rsaPriv)
	if err != nil {
		tb.Fatal(err)
	}
	return []testKey{
		{portal.KeyAgeX25519, x.Recipient().String(), x},
		{portal.KeyAgePQ, pq.Recipient().String(), pq},
		{portal.KeySSHEd25519, authorizedKey(tb, edPub) + " someone@laptop", edID},
		{portal.KeySSHRSA, authorizedKey(tb, &rsaPriv.PublicKey) + " someone@laptop", rsaID},
	}
}

// generate returns a fresh key from gen, such as age.GenerateX25519Identity.
func generate[K any](tb testing.TB, gen func() (K, error)) K {
	tb.Helper()
	k, err := gen()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newEd25519Key(tb testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return pub, priv
}

func newRSAKey(tb testing.TB, bits int) *rsa.PrivateKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func sshPublicKey(tb testing.TB, pub crypto.PublicKey) ssh.PublicKey {
	tb.Helper()
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return pk
}

// authorizedKey is pub as one line of a .pub file, without a comment.
func authorizedKey(tb testing.TB, pub crypto.PublicKey) string {
	tb.Helper()
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(sshPublicKey(tb, pub))), "\n")
}

// sshLine is an authorized_keys line for key types x/crypto cannot make from
// a Go key: wire is the key in SSH wire format, starting with typ.
func sshLine(typ string, wire any) string {
	return typ + " " + base64.StdEncoding.EncodeToString(ssh.Marshal(wire))
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

// typo changes the character of s at i to another Bech32 character.
func typo(s string, i int) string {
	c := byte('q')
	if s[i] == c {
		c = 'p'
	}
	return s[:i] + string(c) + s[i+1:]
}

func ageFingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

func TestParseRecipientAccepts(t *testing.T) {
	xKey := generate(t, age.GenerateX25519Identity).Recipient().String()
	pqKey := generate(t, age.GenerateHybridIdentity).Recipient().String()
	edPub, _ := newEd25519Key(t)
	edKey := authorizedKey(t, edPub)
	edSSH := sshPublicKey(t, edPub)
	rsaPriv := newRSAKey(t, 2048)
	rsaKey := authorizedKey(t, &rsaPriv.PublicKey)
	rsaSSH := sshPublicKey(t, &rsaPriv.PublicKey)

	tests := []struct {
		name        string
		text        string
		key         string
		typ         portal.KeyType
		fingerprint string
	}{
		{"age", xKey, xKey, portal.KeyAgeX25519, ageFingerprint(xKey)},
		{"age with spaces and CRLF", "  \t" + xKey + " \r\n\r\n", xKey, portal.KeyAgeX25519, ageFingerprint(xKey)},
		{"age-keygen output line", "Public key: " + xKey + "\n", xKey, portal.KeyAgeX25519, ageFingerprint(xKey)},
		{"age key file comment line", "# public key: " + xKey, xKey, portal.KeyAgeX25519, ageFingerprint(xKey)},
		{"age upper case", strings.ToUpper(xKey), xKey, portal.KeyAgeX25519, ageFingerprint(xKey)},
		{"age after byte order mark", "\ufeff" + xKey, xKey, portal.KeyAgeX25519, ageFingerprint(xKey)},
		{"age post-quantum", pqKey, pqKey, portal.KeyAgePQ, ageFingerprint(pqKey)},
		{"age post-quantum from age-keygen", "Public key: " + pqKey + "\r\n", pqKey, portal.KeyAgePQ, ageFingerprint(pqKey)},
		{"ssh-ed25519", edKey, edKey, portal.KeySSHEd25519, ssh.FingerprintSHA256(edSSH)},
		{"ssh-ed25519 with comment", edKey + " alice@laptop", edKey, portal.KeySSHEd25519, ssh.FingerprintSHA256(edSSH)},
		{"ssh-ed25519 with spaced comment and CRLF", " " + edKey + "  Alice's work laptop\r\n", edKey, portal.KeySSHEd25519, ssh.FingerprintSHA256(edSSH)},
		{"ssh-rsa 2048", rsaKey + " alice@laptop\n", rsaKey, portal.KeySSHRSA, ssh.FingerprintSHA256(rsaSSH)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRecipient(tt.text)
			if err != nil {
				t.Fatalf("ParseRecipient: %v", err)
			}
			if r.Key != tt.key {
				t.Errorf("Key = %q, want %q", r.Key, tt.key)
			}
			if r.Type != tt.typ {
				t.Errorf("Type = %q, want %q", r.Type, tt.typ)
			}
			if r.Fingerprint != tt.fingerprint {
				t.Errorf("Fingerprint = %q, want %q", r.Fingerprint, tt.fingerprint)
			}
			if r.AgeRecipient() == nil {
				t.Error("AgeRecipient() = nil")
			}
			again, err := ParseRecipient(r.Key)
			if err != nil {
				t.Fatalf("ParseRecipient(r.Key): %v", err)
			}
			if again.Key != r.Key || again.Type != r.Type || again.Fingerprint != r.Fingerprint {
				t.Errorf("ParseRecipient(r.Key) = %+v, want %+v", again, r)
			}
			if len(r.Key) > MaxPublicKeyLen {
				t.Errorf("len(Key) = %d, over MaxPublicKeyLen", len(r.Key))
			}
		})
	}
}

func TestParseRecipientRefuses(t *testing.T) {
	x := generate(t, age.GenerateX25519Identity)
	xKey, xSecret := x.Recipient().String(), x.String()
	x2 := generate(t, age.GenerateX25519Identity)
	pq := generate(t, age.GenerateHybridIdentity)
	edPub, edPriv := newEd25519Key(t)
	edKey := authorizedKey(t, edPub)
	edPub2, _ := newEd25519Key(t)
	opensshBlock, err := ssh.MarshalPrivateKey(edPriv, "alice@laptop")
	if err != nil {
		t.Fatal(err)
	}
	openssh := string(pem.EncodeToMemory(opensshBlock))
	rsaPriv := newRSAKey(t, 2048)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(rsaPriv)
	if err != nil {
		t.Fatal(err)
	}
	edPKCS8, err := x509.MarshalPKCS8PrivateKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecPriv)
	if err != nil {
		t.Fatal(err)
	}
	rsaPubDER, err := x509.MarshalPKIXPublicKey(&rsaPriv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := authorizedKey(t, &rsaPriv.PublicKey)
	rsa1024Key := authorizedKey(t, &newRSAKey(t, 1024).PublicKey)
	// Toy parameters: the portal refuses ssh-dss by its name.
	dsaKey := sshLine(ssh.InsecureKeyAlgoDSA, struct {
		Type       string
		P, Q, G, Y *big.Int
	}{ssh.InsecureKeyAlgoDSA, big.NewInt(23), big.NewInt(11), big.NewInt(4), big.NewInt(8)})
	skEd := sshLine(ssh.KeyAlgoSKED25519, struct {
		Type string
		Key  []byte
		App  string
	}{ssh.KeyAlgoSKED25519, edPub, "ssh:"})
	ecPoint, err := ecPriv.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	skEC := sshLine(ssh.KeyAlgoSKECDSA256, struct {
		Type, Curve string
		Key         []byte
		App         string
	}{ssh.KeyAlgoSKECDSA256, "nistp256", ecPoint, "ssh:"})
	edBlob := strings.Fields(edKey)[1]
	rsaBlob := strings.Fields(rsaKey)[1]

	const (
		privateAdvice = "age-keygen -o key.txt"
		keygenAdvice  = `run "age-keygen -o key.txt"`
	)
	tests := []struct {
		name    string
		text    string
		private bool
		want    []string // in the message
	}{
		{"empty", "", false, []string{"Paste your public key", keygenAdvice}},
		{"blank", " \r\n\t\n", false, []string{"Paste your public key"}},
		{"only the prefix", "Public key: ", false, []string{"the public key itself"}},

		{"age secret key", xSecret, true, []string{"PRIVATE key", "not stored", privateAdvice}},
		{"age secret key in lower case", strings.ToLower(xSecret), true, []string{"PRIVATE key"}},
		{"age key file", "# created: 2026-01-02T03:04:05Z\n# public key: " + xKey + "\n" + xSecret + "\n", true, []string{"PRIVATE key"}},
		{"age post-quantum secret key", pq.String(), true, []string{"PRIVATE key"}},
		{"age plugin identity", "AGE-PLUGIN-YUBIKEY-1QYQSZQGPQYQSZQGPQYQSZQGP", true, []string{"PRIVATE key"}},
		{"public then secret key", xKey + "\n" + xSecret, true, []string{"PRIVATE key"}},
		{"OpenSSH private key", openssh, true, []string{"PRIVATE key"}},
		{"OpenSSH private key without armor", pemBody(openssh), true, []string{"PRIVATE key"}},
		{"RSA private key", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaPriv)), true, []string{"PRIVATE key"}},
		{"RSA private key without armor", pemBody(pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaPriv))), true, []string{"PRIVATE key"}},
		{"EC private key", pemBlock("EC PRIVATE KEY", ecDER), true, []string{"PRIVATE key"}},
		{"EC private key without armor", pemBody(pemBlock("EC PRIVATE KEY", ecDER)), true, []string{"PRIVATE key"}},
		{"PKCS #8 private key", pemBlock("PRIVATE KEY", pkcs8), true, []string{"PRIVATE key"}},
		{"PKCS #8 private key without armor", pemBody(pemBlock("PRIVATE KEY", pkcs8)), true, []string{"PRIVATE key"}},
		{"encrypted PKCS #8 private key", pemBlock("ENCRYPTED PRIVATE KEY", pkcs8), true, []string{"PRIVATE key"}},
		{"PKCS #8 Ed25519 private key", pemBlock("PRIVATE KEY", edPKCS8), true, []string{"PRIVATE key"}},
		{"PKCS #8 Ed25519 private key without armor", pemBody(pemBlock("PRIVATE KEY", edPKCS8)), true, []string{"PRIVATE key"}},
		{"PKCS #8 private key in URL-safe base64", base64.RawURLEncoding.EncodeToString(pkcs8), true, []string{"PRIVATE key"}},
		{"PKCS #8 Ed25519 private key in URL-safe base64", base64.URLEncoding.EncodeToString(edPKCS8), true, []string{"PRIVATE key"}},
		{"PuTTY private key", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n", true, []string{"PRIVATE key"}},
		{"private key over the size limit", openssh + strings.Repeat(" ", MaxPublicKeyLen), true, []string{"PRIVATE key"}},

		{"hardware security key ed25519", skEd + " alice@yubikey", false, []string{"hardware security key", "ssh-ed25519"}},
		{"hardware security key ecdsa", skEC, false, []string{"hardware security key"}},
		{"ecdsa", authorizedKey(t, &ecPriv.PublicKey), false, []string{"cannot encrypt to ecdsa-sha2-nistp256", keygenAdvice, "ssh-ed25519"}},
		{"dsa", dsaKey, false, []string{"cannot encrypt to ssh-dss", keygenAdvice}},
		{"other ssh type", "ssh-mldsa-65 " + edBlob, false, []string{"cannot encrypt to ssh-mldsa-65"}},
		{"ssh certificate", "ssh-ed25519-cert-v01@openssh.com " + edBlob, false, []string{"SSH certificate"}},
		{"rsa 1024", rsa1024Key, false, []string{"1024 bits", "minimum is 2048", keygenAdvice}},

		{"yubikey plugin", yubikeyRecipient, false, []string{"plugin", "age1yubikey1…", keygenAdvice}},
		{"tagged hardware key", tagRecipient, false, []string{"hardware key", "age1tag1…", keygenAdvice}},
		{"any plugin", "age1someplugin1qqqqqqqqqqqqqqqqqqqq", false, []string{"plugin", keygenAdvice}},

		{"two age keys on two lines", xKey + "\n" + x2.Recipient().String(), false, []string{"2 lines", "exactly one"}},
		{"two age keys on one line", xKey + " " + x2.Recipient().String(), false, []string{"more than one key"}},
		{"two ssh keys on one line", edKey + " " + authorizedKey(t, edPub2), false, []string{"more than one key"}},
		{"two ssh keys on two lines", edKey + " a@b\r\n" + authorizedKey(t, edPub2) + " c@d\r\n", false, []string{"exactly one"}},
		{"age key and a comment", xKey + " my laptop", false, []string{"Remove the text after it"}},

		{"too long", strings.Repeat("a", MaxPublicKeyLen+1), false, []string{"too long", "4097 bytes", "just the public key line"}},

		{"secret of another kind", "sk-live-51HqLyjWDarjtT1zdp7dc", false, []string{"starts with age1"}},
		{"long unknown ssh type", "ssh-" + strings.Repeat("x", 100) + " " + edBlob, false, []string{"cannot encrypt to ssh-xxx"}},
		{"words", "hello world", false, []string{"starts with age1", "ssh-ed25519 or ssh-rsa"}},
		{"ssh blob without type", edBlob, false, []string{"starts with age1"}},
		{"truncated age key", xKey[:40], false, []string{"age public key is incomplete"}},
		{"age key with a typo", typo(xKey, 20), false, []string{"age public key is incomplete"}},
		{"truncated post-quantum key", pq.Recipient().String()[:500], false, []string{"age public key is incomplete"}},
		{"ssh type without key", "ssh-ed25519", false, []string{"SSH public key is incomplete"}},
		{"truncated ssh key", edKey[:40], false, []string{"SSH public key is incomplete"}},
		{"ssh key of another type", "ssh-ed25519 " + rsaBlob, false, []string{"SSH public key is incomplete"}},
		{"SSH2 public key", "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"alice\"\n" + edBlob + "\n---- END SSH2 PUBLIC KEY ----\n", false, []string{"SSH2 (PuTTY)"}},
		{"PGP public key", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ\n-----END PGP PUBLIC KEY BLOCK-----\n", false, []string{"PGP key", keygenAdvice}},
		{"PEM public key", pemBlock("PUBLIC KEY", rsaPubDER), false, []string{"PEM block", keygenAdvice}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRecipient(tt.text)
			if err == nil {
				t.Fatalf("ParseRecipient accepted it: %+v", r)
			}
			if r != nil {
				t.Errorf("ParseRecipient returned %+v with the error", r)
			}
			if !errors.Is(err, portal.ErrInvalid) {
				t.Errorf("error %v is not portal.ErrInvalid", err)
			}
			var inv *portal.Error
			if !errors.As(err, &inv) {
				t.Fatalf("error %v is not an Error of KindInvalid", err)
			}
			if inv.Secret != tt.private {
				t.Errorf("Secret = %v, want %v: a private key, and only one, is marked a secret", inv.Secret, tt.private)
			}
			if inv.Field != "public_key" {
				t.Errorf("Field = %q, want public_key", inv.Field)
			}
			for _, w := range tt.want {
				if !strings.Contains(inv.Message, w) {
					t.Errorf("message %q does not contain %q", inv.Message, w)
				}
			}
			assertNotEchoed(t, err, tt.text)
		})
	}
}

// assertNotEchoed fails if err repeats any long word of the input: for a
// private key that would leak the secret into a page or a log. Key type names
// are shorter than 40 characters and may be repeated.
func assertNotEchoed(t *testing.T, err error, input string) {
	t.Helper()
	for _, w := range strings.Fields(input) {
		if len(w) >= 40 && strings.Contains(err.Error(), w) {
			t.Errorf("error repeats input %q: %v", w, err)
		}
	}
}

func TestKeyTypeLabel(t *testing.T) {
	tests := []struct {
		typ  portal.KeyType
		want string
	}{
		{portal.KeyAgeX25519, "age X25519"},
		{portal.KeyAgePQ, "age post-quantum (ML-KEM-768 + X25519)"},
		{portal.KeySSHEd25519, "SSH Ed25519"},
		{portal.KeySSHRSA, "SSH RSA"},
		{"something-else", "something-else"},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ), func(t *testing.T) {
			if got := tt.typ.Label(); got != tt.want {
				t.Errorf("Label() = %q, want %q", got, tt.want)
			}
		})
	}
}
