package issue

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/2i2c-org/credential-portal/internal/agetest"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

func testCluster() *portal.Cluster {
	return &portal.Cluster{
		Name:              "awi-ciroh",
		DisplayName:       "AWI CIROH",
		PrometheusURL:     "https://prometheus.awi-ciroh.2i2c.cloud/",
		CredentialTTLDays: 90,
		Enabled:           true,
	}
}

// mustParse is ParseRecipient for text that must be accepted.
func mustParse(tb testing.TB, text string) *Recipient {
	tb.Helper()
	r, err := ParseRecipient(text)
	if err != nil {
		tb.Fatalf("ParseRecipient(%.40q…): %v", text, err)
	}
	return r
}

// fileField is the value on the line of credentials.txt that starts with label.
func fileField(t *testing.T, file, label string) string {
	t.Helper()
	for line := range strings.Lines(file) {
		if v, ok := strings.CutPrefix(line, label+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("credentials.txt has no %q line:\n%s", label, file)
	return ""
}

// checkCredentialsFile checks that file describes iss for c, and returns the
// password in it after checking it against the hash.
func checkCredentialsFile(t *testing.T, file string, c *portal.Cluster, iss *Issued) string {
	t.Helper()
	for _, want := range []string{
		"Prometheus URL:  https://prometheus.awi-ciroh.2i2c.cloud\n",
		"Cluster:         " + c.Name + "\n",
		"Expires:         " + iss.ExpiresAt.Format(time.RFC3339),
		iss.ExpiresAt.Format("2 January 2006"),
		"login " + iss.Username + " password %s",
		"curl -fsS --netrc-file ~/.netrc-2i2c-awi-ciroh 'https://prometheus.awi-ciroh.2i2c.cloud/api/v1/query' --data-urlencode 'query=up'",
		"basicAuthUser: " + iss.Username + "\n",
		"Basic authentication",
		"report them as compromised",
	} {
		if !strings.Contains(file, want) {
			t.Errorf("credentials.txt does not contain %q:\n%s", want, file)
		}
	}
	if got := fileField(t, file, "Username"); got != iss.Username {
		t.Errorf("Username in file = %q, want %q", got, iss.Username)
	}
	password := fileField(t, file, "Password")
	if err := bcrypt.CompareHashAndPassword([]byte(iss.PasswordHash), []byte(password)); err != nil {
		t.Errorf("password in file does not match PasswordHash: %v", err)
	}
	return password
}

func TestIssue(t *testing.T) {
	c := testCluster()
	now := time.Date(2026, 3, 4, 5, 6, 7, 891011, time.FixedZone("CET", 3600))
	wantIssued := time.Date(2026, 3, 4, 4, 6, 7, 0, time.UTC)
	wantExpires := time.Date(2026, 6, 2, 4, 6, 7, 0, time.UTC)

	for _, k := range newTestKeys(t) {
		t.Run(string(k.typ), func(t *testing.T) {
			r := mustParse(t, k.public)
			iss, err := NewSecrets(DefaultBcryptCost).Issue(c, r, now, time.Time{})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if !bytes.HasPrefix(iss.Ciphertext, []byte("age-encryption.org/v1\n")) {
				t.Errorf("ciphertext is not binary age: starts %q", iss.Ciphertext[:min(40, len(iss.Ciphertext))])
			}
			if !iss.IssuedAt.Equal(wantIssued) || iss.IssuedAt.Location() != time.UTC {
				t.Errorf("IssuedAt = %v, want %v", iss.IssuedAt, wantIssued)
			}
			if !iss.ExpiresAt.Equal(wantExpires) || iss.ExpiresAt.Location() != time.UTC {
				t.Errorf("ExpiresAt = %v, want %v", iss.ExpiresAt, wantExpires)
			}
			if iss.Fingerprint != r.Fingerprint {
				t.Errorf("Fingerprint = %q, want %q", iss.Fingerprint, r.Fingerprint)
			}
			if cost, err := bcrypt.Cost([]byte(iss.PasswordHash)); err != nil || cost != DefaultBcryptCost {
				t.Errorf("bcrypt.Cost = %d, %v; want %d", cost, err, DefaultBcryptCost)
			}
			if !regexp.MustCompile(`^\$2[aby]\$`).MatchString(iss.PasswordHash) {
				t.Errorf("PasswordHash %q does not pass the database check", iss.PasswordHash)
			}

			plaintext, err := age.Decrypt(bytes.NewReader(iss.Ciphertext), k.identity)
			if err != nil {
				t.Fatalf("age.Decrypt: %v", err)
			}
			// age authenticates each chunk as it is read.
			file, err := io.ReadAll(plaintext)
			if err != nil {
				t.Fatalf("reading plaintext: %v", err)
			}
			password := checkCredentialsFile(t, string(file), c, iss)
			if bytes.Contains(iss.Ciphertext, []byte(password)) || strings.Contains(iss.PasswordHash, password) {
				t.Error("the password appears in the clear in what Issue returns")
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	r := mustParse(t, newTestKeys(t)[0].public)
	now := time.Now()
	noTTL := testCluster()
	noTTL.CredentialTTLDays = 0
	noURL := testCluster()
	noURL.PrometheusURL = ""

	tests := []struct {
		name    string
		cluster *portal.Cluster
		r       *Recipient
		now     time.Time
		cost    int
		field   string
	}{
		{"no cluster", nil, r, now, DefaultBcryptCost, "cluster"},
		{"no lifetime", noTTL, r, now, DefaultBcryptCost, "credential_ttl_days"},
		{"no URL", noURL, r, now, DefaultBcryptCost, "prometheus_url"},
		{"no recipient", testCluster(), nil, now, DefaultBcryptCost, "public_key"},
		{"unparsed recipient", testCluster(), &Recipient{Key: r.Key, Type: r.Type}, now, DefaultBcryptCost, "public_key"},
		{"no time", testCluster(), r, time.Time{}, DefaultBcryptCost, ""},
		{"cost too low", testCluster(), r, now, bcrypt.MinCost - 1, "bcrypt_cost"},
		{"cost too high", testCluster(), r, now, bcrypt.MaxCost + 1, "bcrypt_cost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := NewSecrets(tt.cost).Issue(tt.cluster, tt.r, tt.now, time.Time{})
			if iss != nil {
				t.Errorf("Issue returned %+v", iss)
			}
			var inv *portal.Error
			if !errors.Is(err, portal.ErrInvalid) || !errors.As(err, &inv) {
				t.Fatalf("Issue error = %v, want an Error of KindInvalid", err)
			}
			if inv.Field != tt.field {
				t.Errorf("Field = %q, want %q", inv.Field, tt.field)
			}
		})
	}
}

func TestNewUsernameAndPassword(t *testing.T) {
	tests := []struct {
		name    string
		new     func() string
		formats []*regexp.Regexp // each must match
		want    string           // the formats in words
	}{
		{
			name: "NewUsername",
			new:  NewUsername,
			formats: []*regexp.Regexp{
				regexp.MustCompile(`^c-[a-z2-7]{10}$`),
				regexp.MustCompile(`^[a-z0-9-]{3,64}$`), // the credentials table's check
			},
			want: "c- and 10 of a-z2-7",
		},
		{
			name: "NewPassword",
			new:  NewPassword,
			formats: []*regexp.Regexp{
				// 26 characters of a 32-letter alphabet: 130 bits.
				regexp.MustCompile(`^[A-Z2-7]{26}$`),
				passwordPattern,
			},
			want: "26 of A-Z2-7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(map[string]bool)
			for range 10000 {
				s := tt.new()
				for _, format := range tt.formats {
					if !format.MatchString(s) {
						t.Fatalf("%s() = %q, want %s", tt.name, s, tt.want)
					}
				}
				if seen[s] {
					t.Fatalf("%s() repeated %q", tt.name, s)
				}
				seen[s] = true
			}
		})
	}
}

// TestIssuedPasswordsAreRefusedInFreeText: every password NewPassword
// draws is one portal.CleanText refuses as a secret, alone or in a
// sentence, so the free-text rule follows the password's format.
func TestIssuedPasswordsAreRefusedInFreeText(t *testing.T) {
	for range 10000 {
		pw := NewPassword()
		for _, text := range []string{pw, "It leaked: " + pw + "."} {
			_, err := portal.CleanText("details", text, 500)
			var e *portal.Error
			if !errors.As(err, &e) || !e.Secret {
				t.Fatalf("CleanText(%q) = %v, want a refusal marked Secret", text, err)
			}
		}
	}
}

func TestHashPassword(t *testing.T) {
	tests := []struct {
		name     string
		password string
		cost     int
		field    string // of the *portal.Error; "-" if none
	}{
		{"minimum cost", NewPassword(), bcrypt.MinCost, "-"},
		{"default cost", NewPassword(), DefaultBcryptCost, "-"},
		{"cost 10", NewPassword(), 10, "-"},
		{"cost too low", NewPassword(), bcrypt.MinCost - 1, "bcrypt_cost"},
		{"cost too high", NewPassword(), bcrypt.MaxCost + 1, "bcrypt_cost"},
		{"password too long", strings.Repeat("A", 73), DefaultBcryptCost, "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash, err := HashPassword(tt.password, tt.cost)
			if tt.field != "-" {
				var inv *portal.Error
				if !errors.As(err, &inv) || !errors.Is(err, portal.ErrInvalid) || inv.Field != tt.field {
					t.Fatalf("HashPassword error = %v, want an Error of KindInvalid for %s", err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("HashPassword: %v", err)
			}
			if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != tt.cost {
				t.Errorf("bcrypt.Cost = %d, %v; want %d", cost, err, tt.cost)
			}
			if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(tt.password)); err != nil {
				t.Errorf("hash does not verify: %v", err)
			}
		})
	}
}

func TestRenderCredentialsFile(t *testing.T) {
	issued := time.Date(2026, 3, 4, 4, 6, 7, 0, time.UTC)
	valid := func() *CredentialsFile {
		return &CredentialsFile{
			Cluster:   testCluster(),
			Username:  "c-abcdefgh23",
			Password:  "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
			IssuedAt:  issued,
			ExpiresAt: issued.Add(90 * 24 * time.Hour),
		}
	}

	t.Run("valid", func(t *testing.T) {
		b, err := RenderCredentialsFile(valid())
		if err != nil {
			t.Fatalf("RenderCredentialsFile: %v", err)
		}
		file := string(b)
		for _, want := range []string{
			"Prometheus credentials for AWI CIROH\n",
			"Cluster:         awi-ciroh\n",
			"Prometheus URL:  https://prometheus.awi-ciroh.2i2c.cloud\n",
			"Username:        c-abcdefgh23\n",
			"Password:        ABCDEFGHIJKLMNOPQRSTUVWXYZ\n",
			"Issued:          2026-03-04T04:06:07Z\n",
			"Expires:         2026-06-02T04:06:07Z (Tuesday 2 June 2026, 04:06 UTC)\n",
			"    (umask 077; printf 'machine prometheus.awi-ciroh.2i2c.cloud login c-abcdefgh23 password %s\\n' \\\n",
			"      \"$(sed -n 's/^Password: *//p' credentials.txt)\" > ~/.netrc-2i2c-awi-ciroh)\n",
			"    curl -fsS --netrc-file ~/.netrc-2i2c-awi-ciroh 'https://prometheus.awi-ciroh.2i2c.cloud/api/v1/query' --data-urlencode 'query=up'\n",
			"        basicAuth: true\n",
			"        basicAuthUser: c-abcdefgh23\n",
			"        secureJsonData:\n          basicAuthPassword: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'\n",
			"2. Prometheus server URL: https://prometheus.awi-ciroh.2i2c.cloud\n",
			"   User:      c-abcdefgh23\n",
			"   Password:  ABCDEFGHIJKLMNOPQRSTUVWXYZ\n",
			"Do not share this file",
			"report them as compromised",
		} {
			if !strings.Contains(file, want) {
				t.Errorf("credentials.txt does not contain %q:\n%s", want, file)
			}
		}
		if strings.Contains(file, "<no value>") || strings.Contains(file, "{{") {
			t.Errorf("credentials.txt has an unfilled placeholder:\n%s", file)
		}
	})

	tests := []struct {
		name   string
		change func(f *CredentialsFile)
		field  string
	}{
		{"no cluster", func(f *CredentialsFile) { f.Cluster = nil }, "cluster"},
		{"URL with a quote", func(f *CredentialsFile) { f.Cluster.PrometheusURL = "https://x'; rm -rf ~" }, "prometheus_url"},
		{"URL without scheme", func(f *CredentialsFile) { f.Cluster.PrometheusURL = "prometheus.x.2i2c.cloud" }, "prometheus_url"},
		{"username with a quote", func(f *CredentialsFile) { f.Username = "c-ab'cd" }, "username"},
		{"empty username", func(f *CredentialsFile) { f.Username = "" }, "username"},
		{"password with a quote", func(f *CredentialsFile) { f.Password = "ABCDEFGHIJKLMNOP'" }, "password"},
		{"short password", func(f *CredentialsFile) { f.Password = "short" }, "password"},
		{"expiry before issue", func(f *CredentialsFile) { f.ExpiresAt = f.IssuedAt.Add(-time.Hour) }, "expires_at"},
		{"no issue time", func(f *CredentialsFile) { f.IssuedAt = time.Time{} }, "expires_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := valid()
			tt.change(f)
			_, err := RenderCredentialsFile(f)
			var inv *portal.Error
			if !errors.As(err, &inv) || !errors.Is(err, portal.ErrInvalid) || inv.Field != tt.field {
				t.Fatalf("RenderCredentialsFile error = %v, want an Error of KindInvalid for %s", err, tt.field)
			}
		})
	}
}

func TestEncryptRefusesUnparsedRecipient(t *testing.T) {
	for _, r := range []*Recipient{nil, {Key: "age1x", Type: portal.KeyAgeX25519}} {
		if _, err := Encrypt([]byte("x"), r); !errors.Is(err, portal.ErrInvalid) {
			t.Errorf("Encrypt(%+v) error = %v, want portal.ErrInvalid", r, err)
		}
	}
}

// TestAgeCommand decrypts issued credentials with the age command, exactly
// as the customer docs say, from keys made the way customers make them.
func TestAgeCommand(t *testing.T) {
	ageCmd, keygenCmd := ageCLI(t)

	// Each case leaves in dir the identity file key.txt and returns the
	// public key as the customer would paste it.
	tests := []struct {
		name    string
		typ     portal.KeyType
		makeKey func(t *testing.T, dir string) string
	}{
		{"age-keygen", portal.KeyAgeX25519, func(t *testing.T, dir string) string {
			return run(t, dir, keygenCmd, "-o", "key.txt")
		}},
		{"age-keygen -pq", portal.KeyAgePQ, func(t *testing.T, dir string) string {
			return run(t, dir, keygenCmd, "-pq", "-o", "key.txt")
		}},
		{"ssh-ed25519", portal.KeySSHEd25519, func(t *testing.T, dir string) string {
			pub, priv := newEd25519Key(t)
			writeOpenSSHKey(t, filepath.Join(dir, "key.txt"), priv)
			return authorizedKey(t, pub) + " alice@laptop\n"
		}},
		{"ssh-rsa", portal.KeySSHRSA, func(t *testing.T, dir string) string {
			priv := newRSAKey(t, 3072)
			writeOpenSSHKey(t, filepath.Join(dir, "key.txt"), priv)
			return authorizedKey(t, &priv.PublicKey) + " alice@laptop\n"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := mustParse(t, tt.makeKey(t, dir))
			if r.Type != tt.typ {
				t.Fatalf("Type = %q, want %q", r.Type, tt.typ)
			}
			c := testCluster()
			iss, err := NewSecrets(DefaultBcryptCost).Issue(c, r, time.Now(), time.Time{})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "credentials.txt.age"), iss.Ciphertext, 0o600); err != nil {
				t.Fatal(err)
			}
			run(t, dir, ageCmd, "--decrypt", "-i", "key.txt", "-o", "credentials.txt", "credentials.txt.age")
			file, err := os.ReadFile(filepath.Join(dir, "credentials.txt"))
			if err != nil {
				t.Fatal(err)
			}
			checkCredentialsFile(t, string(file), c, iss)
		})
	}
}

// ageCLI finds the age and age-keygen commands of the version go.mod
// requires (agetest.Commands): in .tools/bin, where `make test` installs
// them, on PATH or in $GOPATH/bin, passing over another version such as
// Debian's 1.1.1, which has no -pq. Without them the test fails with the
// command that installs them; PORTAL_TEST_NO_AGE_CLI=1 skips it on purpose.
func ageCLI(t *testing.T) (ageCmd, keygenCmd string) {
	t.Helper()
	return agetest.Commands(t)
}

// run runs name with args in dir and returns its standard error, where
// age-keygen prints "Public key: …".
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stderr.String()
}

func writeOpenSSHKey(t *testing.T, path string, key any) {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "alice@laptop")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkIssue(b *testing.B) {
	c := testCluster()
	now := time.Now()
	keys := newTestKeys(b)
	recipients := make([]*Recipient, len(keys))
	for i, k := range keys {
		recipients[i] = mustParse(b, k.public)
	}

	// The whole of Issue, then its parts: bcrypt, rendering, age.
	for _, r := range recipients {
		b.Run("issue/"+string(r.Type), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewSecrets(DefaultBcryptCost).Issue(c, r, now, time.Time{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, cost := range []int{DefaultBcryptCost, 10} {
		b.Run(fmt.Sprintf("bcrypt/cost=%d", cost), func(b *testing.B) {
			b.ReportAllocs()
			password := NewPassword()
			for b.Loop() {
				if _, err := HashPassword(password, cost); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	file := &CredentialsFile{
		Cluster:   c,
		Username:  NewUsername(),
		Password:  NewPassword(),
		IssuedAt:  now,
		ExpiresAt: now.Add(c.CredentialTTL()),
	}
	b.Run("render", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := RenderCredentialsFile(file); err != nil {
				b.Fatal(err)
			}
		}
	})
	plaintext, err := RenderCredentialsFile(file)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range recipients {
		b.Run("age/"+string(r.Type), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encrypt(plaintext, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
