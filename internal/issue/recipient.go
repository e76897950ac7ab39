package issue

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// MaxPublicKeyLen is the longest public key text accepted, in bytes. A
// post-quantum age key is about 2,000 characters and a 16384-bit SSH RSA key
// about 2,800; the database refuses anything longer.
const MaxPublicKeyLen = 4096

// MinRSABits is the smallest SSH RSA key age will encrypt to.
const MinRSABits = 2048

const fieldPublicKey = "public_key"

// howToGetAKey ends most refusals: it is what the customer docs tell people to do.
const howToGetAKey = `run "age-keygen -o key.txt" and paste the age1… key it prints after "Public key:"`

// Recipient is a customer's public key, parsed: what credentials are encrypted
// to. Only ParseRecipient makes a usable one.
type Recipient struct {
	// Key is the public key as stored: one line, trimmed, without an SSH
	// comment, in canonical form. ParseRecipient(Key) gives the same Recipient.
	Key  string
	Type portal.KeyType
	// Fingerprint identifies the key on screen. For SSH keys it is what
	// "ssh-keygen -l" prints ("SHA256:" and the unpadded base64 of the SHA-256
	// of the wire-format key). age has no fingerprint of its own, so for age
	// keys it is "SHA256:" and the unpadded base64 of the SHA-256 of Key (the
	// lowercase age1… string): the same shape, short enough to compare by eye
	// even for a 2,000-character post-quantum key, and reproducible with
	// printf %s age1… | openssl dgst -sha256 -binary | base64.
	Fingerprint string

	age age.Recipient
}

// AgeRecipient is the key as the age library encrypts to it; nil unless r
// came from ParseRecipient.
func (r *Recipient) AgeRecipient() age.Recipient { return r.age }

// publicKeyPrefix is what age-keygen prints before the public key.
var publicKeyPrefix = regexp.MustCompile(`(?i)^#?\s*public key:\s*`)

// ParseRecipient reads the public key a customer pasted: an age key (age1…, or
// age1pq1… for a post-quantum one), optionally with the "Public key:" prefix
// age-keygen prints, or an ssh-ed25519 or ssh-rsa key as in a .pub file.
// Surrounding space, a CRLF line ending and an SSH comment are dropped.
//
// Every refusal is a *portal.Error of KindInvalid for the field
// "public_key", with a message saying what to paste instead. If the text
// holds a private key the error is marked Secret: the web layer clears the
// field rather than show it back, and nothing logs it. A message may name the
// key type it saw, but never repeats key material.
func ParseRecipient(text string) (*Recipient, error) {
	// Before anything else, so that no other message (too long, several lines)
	// hides that a secret was exposed. The rule is the one every free-text
	// field follows (portal.CleanText).
	if portal.ContainsPrivateKey(text) {
		return nil, &portal.Error{Kind: portal.KindInvalid, Field: fieldPublicKey, Secret: true, Message: "This is a PRIVATE key, " +
			"which must never be shared with anyone, 2i2c included. The portal has not stored it. " +
			"As it has left your computer, treat it as exposed: make a new key pair with " +
			`"age-keygen -o key.txt" and paste only the line it prints after "Public key:".`}
	}
	text = strings.TrimSpace(strings.TrimPrefix(text, "\ufeff"))
	if text == "" {
		return nil, portal.Invalid(fieldPublicKey, "Paste your public key: %s.", howToGetAKey)
	}
	if len(text) > MaxPublicKeyLen {
		return nil, portal.Invalid(fieldPublicKey, "This is too long for a public key (%d bytes; the limit is %d). "+
			"Paste just the public key line.", len(text), MaxPublicKeyLen)
	}
	if err := refuseArmor(text); err != nil {
		return nil, err
	}

	var lines []string
	for line := range strings.Lines(text) {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) > 1 {
		return nil, portal.Invalid(fieldPublicKey, "This has %d lines. Paste exactly one public key, on one line.", len(lines))
	}
	fields := strings.Fields(publicKeyPrefix.ReplaceAllLiteralString(lines[0], ""))
	if len(fields) == 0 {
		return nil, portal.Invalid(fieldPublicKey, "Paste the public key itself, after \"Public key:\".")
	}

	switch typ := fields[0]; {
	case strings.HasPrefix(strings.ToLower(typ), "age1"):
		return parseAge(typ, fields[1:])
	case typ == ssh.KeyAlgoED25519 || typ == ssh.KeyAlgoRSA:
		return parseSSH(typ, fields[1:])
	case strings.HasPrefix(typ, "sk-") && strings.HasSuffix(typ, "@openssh.com"):
		kind := "a hardware security key"
		if w, ok := typeWord(typ); ok {
			kind += " (" + w + ")"
		}
		return nil, portal.Invalid(fieldPublicKey, "This key lives on %s, which cannot be "+
			"encrypted to. Instead, %s, or paste a plain ssh-ed25519 key.", kind, howToGetAKey)
	case strings.HasSuffix(typ, "-cert-v01@openssh.com"):
		return nil, portal.Invalid(fieldPublicKey, "This is an SSH certificate. Paste the plain public key instead: "+
			"the .pub file without -cert in its name.")
	case strings.HasPrefix(typ, "ssh-") || strings.HasPrefix(typ, "ecdsa-") || strings.HasSuffix(typ, "@openssh.com"):
		kind := "keys of this type"
		if w, ok := typeWord(typ); ok {
			kind = w + " keys"
		}
		return nil, portal.Invalid(fieldPublicKey, "age cannot encrypt to %s. Either %s, or paste an "+
			"ssh-ed25519 key.", kind, howToGetAKey)
	}
	return nil, portal.Invalid(fieldPublicKey, "This is not a public key the portal accepts. Paste an age public "+
		"key, which starts with age1, or an SSH public key that starts with ssh-ed25519 or ssh-rsa "+
		"(the contents of your .pub file). To make an age key, %s.", howToGetAKey)
}

// typeWord is a pasted key's type word as a refusal may name it back: its
// first 40 bytes, when it is printable ASCII as every SSH type is. A longer
// word is never repeated whole, and one of other characters not at all: the
// paste is the customer's text, which may hold anything.
func typeWord(typ string) (string, bool) {
	for i := 0; i < len(typ); i++ {
		if typ[i] < '!' || typ[i] > '~' {
			return "", false
		}
	}
	return typ[:min(len(typ), 40)], true
}

func parseAge(key string, rest []string) (*Recipient, error) {
	if len(rest) > 0 {
		if looksLikeKey(rest) {
			return nil, portal.Invalid(fieldPublicKey, "This has more than one key. Paste exactly one public key.")
		}
		return nil, portal.Invalid(fieldPublicKey, "An age public key is one word starting with age1. "+
			"Remove the text after it.")
	}
	// Bech32 may be all upper case; age itself only reads lower case.
	if strings.ToUpper(key) == key {
		key = strings.ToLower(key)
	}

	damaged := portal.Invalid(fieldPublicKey, "This age public key is incomplete or mistyped. "+
		"Copy the whole line again: it is the text after \"Public key:\" that age-keygen printed.")
	// The Bech32 separator is the last "1": what comes before names the kind
	// of recipient, "age" for X25519 and "age1<plugin>" for the rest.
	var (
		r   age.Recipient
		typ portal.KeyType
	)
	switch hrp := strings.ToLower(key[:strings.LastIndexByte(key, '1')]); hrp {
	case "age":
		x, err := age.ParseX25519Recipient(key)
		if err != nil {
			return nil, damaged
		}
		r, typ, key = x, portal.KeyAgeX25519, x.String()
	case "age1pq":
		pq, err := age.ParseHybridRecipient(key)
		if err != nil {
			return nil, damaged
		}
		r, typ, key = pq, portal.KeyAgePQ, pq.String()
	default:
		// Plugin recipients (age1yubikey1…) need the plugin binary on the
		// server, and tagged ones (age1tag1…) a hardware key to decrypt: not
		// what "age --decrypt -i key.txt" can open.
		// Named by its prefix and separator ("age1yubikey1…"), never by all
		// of the word: what follows the separator is elided, and a prefix
		// with nothing after it, or one cut short, is named without it.
		kind := "an age plugin or hardware key"
		if w, ok := typeWord(hrp); ok {
			if w == hrp && len(key) > len(hrp)+1 {
				w += "1"
			}
			kind += " (" + w + "…)"
		}
		return nil, portal.Invalid(fieldPublicKey, "This is the recipient of %s; "+
			"the portal can only encrypt to plain age or SSH keys. Instead, %s.", kind, howToGetAKey)
	}
	sum := sha256.Sum256([]byte(key))
	return &Recipient{
		Key:         key,
		Type:        typ,
		Fingerprint: "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]),
		age:         r,
	}, nil
}

func parseSSH(typ string, rest []string) (*Recipient, error) {
	damaged := portal.Invalid(fieldPublicKey, "This SSH public key is incomplete or mistyped. "+
		"Copy the whole line of your .pub file again.")
	if len(rest) == 0 {
		return nil, damaged
	}
	if looksLikeKey(rest[1:]) {
		return nil, portal.Invalid(fieldPublicKey, "This has more than one key. Paste exactly one public key.")
	}
	blob, err := base64.StdEncoding.DecodeString(rest[0])
	if err != nil {
		return nil, damaged
	}
	pk, err := ssh.ParsePublicKey(blob)
	if err != nil || pk.Type() != typ {
		return nil, damaged
	}

	var r age.Recipient
	switch typ {
	case ssh.KeyAlgoRSA:
		// agessh refuses small keys too, but without saying how small.
		if cpk, ok := pk.(ssh.CryptoPublicKey); ok {
			if rpk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey); ok && rpk.N.BitLen() < MinRSABits {
				return nil, portal.Invalid(fieldPublicKey, "This RSA key has %d bits; the minimum is %d. "+
					"Either %s, or use an ssh-ed25519 key.", rpk.N.BitLen(), MinRSABits, howToGetAKey)
			}
		}
		r, err = agessh.NewRSARecipient(pk)
	case ssh.KeyAlgoED25519:
		r, err = agessh.NewEd25519Recipient(pk)
	}
	if err != nil {
		return nil, damaged
	}
	return &Recipient{
		Key:         strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pk)), "\n"),
		Type:        portal.KeyType(typ),
		Fingerprint: ssh.FingerprintSHA256(pk),
		age:         r,
	}, nil
}

// looksLikeKey reports whether any of words starts a public key, to tell a
// second key from an SSH comment.
func looksLikeKey(words []string) bool {
	for _, w := range words {
		switch {
		case strings.HasPrefix(strings.ToLower(w), "age1") && len(w) > 50,
			w == ssh.KeyAlgoED25519, w == ssh.KeyAlgoRSA, w == ssh.InsecureKeyAlgoDSA,
			strings.HasPrefix(w, "ecdsa-sha2-"),
			strings.HasPrefix(w, "sk-") && strings.HasSuffix(w, "@openssh.com"):
			return true
		}
	}
	return false
}

// refuseArmor explains the multi-line formats people paste by mistake, which
// would otherwise get the less helpful "one line" message.
func refuseArmor(text string) error {
	upper := strings.ToUpper(text)
	switch {
	case !strings.Contains(upper, "BEGIN "):
		return nil
	case strings.Contains(upper, "BEGIN SSH2 PUBLIC KEY"):
		return portal.Invalid(fieldPublicKey, "This SSH public key is in the SSH2 (PuTTY) format. Paste the one-line "+
			"OpenSSH form instead, starting with ssh-ed25519 or ssh-rsa: PuTTYgen shows it under \"Public key "+
			"for pasting into OpenSSH authorized_keys file\".")
	case strings.Contains(upper, "BEGIN PGP"):
		return portal.Invalid(fieldPublicKey, "This is a PGP key; the portal needs an age or SSH public key. "+
			"Instead, %s.", howToGetAKey)
	case strings.Contains(upper, "-----BEGIN "):
		return portal.Invalid(fieldPublicKey, "This is a PEM block, not a public key the portal accepts. "+
			"Paste an SSH public key that starts with ssh-ed25519 or ssh-rsa, or %s.", howToGetAKey)
	}
	return nil
}
