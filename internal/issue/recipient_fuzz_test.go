package issue

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// FuzzParseRecipient feeds ParseRecipient whatever a customer might paste.
// Whatever it accepts must be a key age encrypts to, whose canonical Key
// parses again to the same recipient; whatever it refuses must be refused
// as invalid input for the public_key field, with a message that does not
// repeat key material. The seeds (testdata/fuzz/FuzzParseRecipient) are real
// keys of each accepted type and the mistakes customers make.
func FuzzParseRecipient(f *testing.F) {
	f.Add("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p")
	f.Add("Public key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\r\n")
	f.Add("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX")
	f.Fuzz(func(t *testing.T, text string) {
		r, err := ParseRecipient(text)
		if err != nil {
			checkRefusal(t, text, err)
			return
		}
		if r.Key == "" || strings.ContainsAny(r.Key, "\r\n") || len(r.Key) > MaxPublicKeyLen {
			t.Fatalf("accepted %q as the key %q: not one line of at most %d bytes", text, r.Key, MaxPublicKeyLen)
		}
		if r.Fingerprint == "" || r.AgeRecipient() == nil {
			t.Fatalf("accepted %q without a fingerprint or an age recipient", text)
		}
		again, err := ParseRecipient(r.Key)
		if err != nil {
			t.Fatalf("the canonical key %q of %q does not parse again: %v", r.Key, text, err)
		}
		if again.Key != r.Key || again.Type != r.Type || again.Fingerprint != r.Fingerprint {
			t.Fatalf("the canonical key of %q parses to %q %s %s, want %q %s %s",
				text, again.Key, again.Type, again.Fingerprint, r.Key, r.Type, r.Fingerprint)
		}
		ciphertext, err := Encrypt([]byte("Username: c-fuzz\n"), r)
		if err != nil {
			t.Fatalf("accepted %q, but age cannot encrypt to it: %v", text, err)
		}
		// The file must be one "age --decrypt" reads: a binary age header
		// with one stanza for this recipient.
		if !bytes.HasPrefix(ciphertext, []byte("age-encryption.org/v1\n-> ")) {
			t.Fatalf("the encrypted file does not start with an age header: %q", ciphertext[:min(len(ciphertext), 40)])
		}
		// age reads the whole header and finds no stanza for another key: the
		// file is well formed.
		var noMatch *age.NoIdentityMatchError
		if _, err := age.Decrypt(bytes.NewReader(ciphertext), wrongIdentity(t)); !errors.As(err, &noMatch) {
			t.Fatalf("the file encrypted to %q, opened with another key: %v, want age's no-identity-matched error", r.Key, err)
		}
	})
}

// checkRefusal checks that err, ParseRecipient's refusal of text, is the
// kind of refusal the request form shows: invalid input for public_key,
// with a message, repeating no long word of the text (key material).
func checkRefusal(t *testing.T, text string, err error) {
	t.Helper()
	var pe *portal.Error
	if !errors.As(err, &pe) || !errors.Is(err, portal.ErrInvalid) {
		t.Fatalf("refused %q with %T %v, want a portal.Error of KindInvalid", text, err, err)
	}
	if pe.Field != fieldPublicKey || strings.TrimSpace(pe.Message) == "" {
		t.Fatalf("refused %q with field %q and message %q, want field %q and a message", text, pe.Field, pe.Message, fieldPublicKey)
	}
	for _, w := range strings.Fields(text) {
		if len(w) > 40 && strings.Contains(pe.Message, w) {
			t.Fatalf("the refusal of %q repeats %q: %s", text, w, pe.Message)
		}
	}
}

// wrongIdentity is an age identity no fuzzed recipient can be: made fresh
// for each call.
func wrongIdentity(t *testing.T) age.Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// FuzzEncryptToPastedKey makes an SSH Ed25519 key pair from seed (the
// fuzzer's bytes, stretched or cut to 32), pastes its public key line with
// the text before and after it that people paste along (a prompt, a
// comment, blank lines), and checks what the customer relies on: if
// ParseRecipient accepts the paste, the file the portal encrypts to it
// opens with the private key, as "age --decrypt -i ~/.ssh/id_ed25519"
// opens it; and the paste of the bare line is always accepted.
func FuzzEncryptToPastedKey(f *testing.F) {
	f.Add([]byte("seed"), "", "")
	f.Add([]byte("seed"), "", " alice@laptop\r\n")
	f.Add([]byte{0}, "Public key: ", "\n\n")
	f.Add([]byte("another seed"), "\ufeff", " two words")
	f.Fuzz(func(t *testing.T, seed []byte, before, after string) {
		var s [ed25519.SeedSize]byte
		copy(s[:], seed)
		priv := ed25519.NewKeyFromSeed(s[:])
		pub, err := ssh.NewPublicKey(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
		if _, err := ParseRecipient(line); err != nil {
			t.Fatalf("the bare key line %q is refused: %v", line, err)
		}
		r, err := ParseRecipient(before + line + after)
		if err != nil {
			checkRefusal(t, before+line+after, err)
			return
		}
		if r.Key != line {
			t.Fatalf("pasted with %q and %q, the key reads as %q, want %q", before, after, r.Key, line)
		}
		plaintext := []byte("Username: c-fuzz\nPassword: not-a-real-one\n")
		ciphertext, err := Encrypt(plaintext, r)
		if err != nil {
			t.Fatal(err)
		}
		id, err := agessh.NewEd25519Identity(priv)
		if err != nil {
			t.Fatal(err)
		}
		out, err := age.Decrypt(bytes.NewReader(ciphertext), id)
		if err != nil {
			t.Fatalf("the file encrypted to %q does not open with its private key: %v", line, err)
		}
		if got, _ := io.ReadAll(out); !bytes.Equal(got, plaintext) {
			t.Fatalf("the file opens to %q, want %q", got, plaintext)
		}
	})
}
