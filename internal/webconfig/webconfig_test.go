package webconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"
)

// hashes holds one bcrypt hash per password, made once: bcrypt is slow on
// purpose, even at its least cost.
var hashes sync.Map

func hashOf(t testing.TB, password string) string {
	t.Helper()
	if h, ok := hashes.Load(password); ok {
		return h.(string)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hashes.Store(password, string(h))
	return string(h)
}

// expiry is the time the documents of these tests write as
// 2027-02-23T10:02:40Z.
var expiry = time.Date(2027, 2, 23, 10, 2, 40, 0, time.UTC)

func TestParseStrict(t *testing.T) {
	internal := hashOf(t, "internal-pw")
	tests := []struct {
		name    string
		doc     string
		wantErr string // "" for valid
	}{
		{name: "users only", doc: "basic_auth_users:\n  internal: " + internal + "\n"},
		{name: "tls, http and rate limit settings",
			doc: "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n" +
				"http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n" +
				"rate_limit:\n  burst: 10\n  interval: 1s\n" +
				"basic_auth_users:\n  internal: " + internal + "\n"},
		{name: "unknown top-level key", doc: "basic_auth_users:\n  internal: " + internal + "\nextra: 1\n", wantErr: "field extra not found"},
		{name: "unknown tls key", doc: "tls_server_config:\n  certfile: x\nbasic_auth_users:\n  internal: " + internal + "\n", wantErr: "field certfile not found"},
		{name: "unknown tls version", doc: "tls_server_config:\n  min_version: TLS99\nbasic_auth_users:\n  internal: " + internal + "\n", wantErr: "unknown TLS version"},
		{name: "header not allowed", doc: "http_server_config:\n  headers:\n    X-Powered-By: me\nbasic_auth_users:\n  internal: " + internal + "\n", wantErr: "can not be configured"},
		{name: "header value not allowed", doc: "http_server_config:\n  headers:\n    X-Frame-Options: allow\nbasic_auth_users:\n  internal: " + internal + "\n", wantErr: "want one of"},
		{name: "not a bcrypt hash", doc: "basic_auth_users:\n  internal: plaintext-password\n", wantErr: `user "internal": not a bcrypt hash`},
		{name: "truncated hash", doc: "basic_auth_users:\n  internal: " + internal[:30] + "\n", wantErr: "not a bcrypt hash"},
		{name: "duplicate user", doc: "basic_auth_users:\n  internal: " + internal + "\n  internal: " + internal + "\n", wantErr: "already set"},
		{name: "truncated YAML", doc: "basic_auth_users:\n  internal: [" + internal, wantErr: "yaml"},
		{name: "HTML", doc: "<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", wantErr: "cannot unmarshal"},
		{name: "no users", doc: "tls_server_config:\n  min_version: TLS12\n", wantErr: "no basic_auth_users"},
		{name: "empty", doc: "", wantErr: "no basic_auth_users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validate([]byte(tt.doc))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseStrict: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseStrict accepted %q", tt.doc)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestParseStrictAgreesWithToolkit checks parseStrict against exporter-toolkit's
// own web.Validate, on files, for documents that need no certificate.
func TestParseStrictAgreesWithToolkit(t *testing.T) {
	internal := hashOf(t, "internal-pw")
	docs := []string{
		"basic_auth_users:\n  internal: " + internal + "\n",
		"http_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  internal: " + internal + "\n",
		"basic_auth_users:\n  internal: " + internal + "\nextra: 1\n",
		"basic_auth_users:\n  internal: nope\n",
		"http_server_config:\n  headers:\n    X-Powered-By: me\nbasic_auth_users:\n  internal: " + internal + "\n",
		"<!DOCTYPE html>\n<html></html>\n",
		"basic_auth_users:\n  internal: [" + internal,
		"basic_auth_users:\n  yes: " + internal + "\n  \"null\": " + internal + "\n",
	}
	dir := t.TempDir()
	for i, doc := range docs {
		path := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		ours, theirs := validate([]byte(doc)), web.Validate(path)
		if (ours == nil) != (theirs == nil) {
			t.Errorf("doc %d: parseStrict says %v, web.Validate says %v", i, ours, theirs)
		}
	}
}

func TestMerge(t *testing.T) {
	internal, alice, bob := hashOf(t, "internal-pw"), hashOf(t, "alice-pw"), hashOf(t, "bob-pw")
	tlsBase := "# 2i2c's own settings\n" +
		"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n" +
		"http_server_config:\n  headers:\n    X-Frame-Options: deny\n" +
		"rate_limit:\n  burst: 100\n  interval: 10ms\n" +
		"basic_auth_users:\n  # central Grafana, probes, federation\n  internal: " + internal + "\n"
	tests := []struct {
		name        string
		base        string
		portal      Users
		expires     Expiries
		wantUsers   Users
		wantAdded   []string
		wantClashes []string
		wantText    []string // substrings of the merged document
		wantErr     string
	}{
		{
			name:      "tls base keeps its settings and comments",
			base:      tlsBase,
			portal:    Users{"c-alice": alice, "c-bob": bob},
			wantUsers: Users{"internal": internal, "c-alice": alice, "c-bob": bob},
			wantAdded: []string{"c-alice", "c-bob"},
			wantText: []string{"# 2i2c's own settings\n", "min_version: TLS13", "X-Frame-Options: deny", "interval: 10ms",
				"# central Grafana, probes, federation\n  internal: ", "c-alice: " + alice + " " + portalMarker},
		},
		{
			name:      "expiries in the markers, to the second",
			base:      "basic_auth_users:\n  internal: " + internal + "\n",
			portal:    Users{"c-alice": alice, "c-bob": bob},
			expires:   Expiries{"c-alice": time.Date(2027, 2, 23, 11, 2, 40, 900e6, time.FixedZone("CET", 3600))},
			wantUsers: Users{"internal": internal, "c-alice": alice, "c-bob": bob},
			wantAdded: []string{"c-alice", "c-bob"},
			wantText: []string{"c-alice: " + alice + " # from portal, expires 2027-02-23T10:02:40Z\n",
				"c-bob: " + bob + " # from portal\n"},
		},
		{
			name:    "an expiry for a user the portal did not send",
			base:    "basic_auth_users:\n  internal: " + internal + "\n",
			portal:  Users{"c-alice": alice},
			expires: Expiries{"c-bob": time.Now()},
			wantErr: `an expiry for "c-bob"`,
		},
		{
			name:        "base wins a clash",
			base:        "basic_auth_users:\n  internal: " + internal + "\n",
			portal:      Users{"internal": alice, "c-bob": bob},
			wantUsers:   Users{"internal": internal, "c-bob": bob},
			wantAdded:   []string{"c-bob"},
			wantClashes: []string{"internal"},
		},
		{
			name:      "no portal users gives the base",
			base:      "basic_auth_users:\n  internal: " + internal + "\n",
			portal:    Users{},
			wantUsers: Users{"internal": internal},
		},
		{
			name:      "flow-style base mapping",
			base:      "basic_auth_users: {internal: " + internal + "}\n",
			portal:    Users{"c-alice": alice},
			wantUsers: Users{"internal": internal, "c-alice": alice},
			wantAdded: []string{"c-alice"},
		},
		{
			name:      "names YAML 1.1 would misread are quoted",
			base:      "basic_auth_users:\n  internal: " + internal + "\n",
			portal:    Users{"yes": alice, "null": bob, "123": alice, "a b": bob},
			wantUsers: Users{"internal": internal, "yes": alice, "null": bob, "123": alice, "a b": bob},
			wantAdded: []string{"123", "a b", "null", "yes"},
		},
		{
			name:    "portal hash not bcrypt",
			base:    "basic_auth_users:\n  internal: " + internal + "\n",
			portal:  Users{"c-alice": "md5$abc"},
			wantErr: "not a complete bcrypt hash",
		},
		{
			name:    "portal hash truncated by one character",
			base:    "basic_auth_users:\n  internal: " + internal + "\n",
			portal:  Users{"c-alice": alice[:59]},
			wantErr: "not a complete bcrypt hash",
		},
		{
			name:    "portal username with a colon",
			base:    "basic_auth_users:\n  internal: " + internal + "\n",
			portal:  Users{"c:alice": alice},
			wantErr: "colon",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, err := ParseWebConfig([]byte(tt.base))
			if err != nil {
				t.Fatalf("ParseWebConfig: %v", err)
			}
			m, err := Merge(base, tt.portal, tt.expires)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Merge error %v, want ErrInvalid containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			if err := validate(m.Doc); err != nil {
				t.Fatalf("merged document invalid: %v\n%s", err, m.Doc)
			}
			got, err := parseStrict(m.Doc)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Users) != len(tt.wantUsers) {
				t.Errorf("users %v, want %v", got.Users, tt.wantUsers)
			}
			for name, h := range tt.wantUsers {
				if string(got.Users[name]) != h {
					t.Errorf("user %q: hash %q, want %q", name, got.Users[name], h)
				}
			}
			if strings.Join(m.Added, ",") != strings.Join(tt.wantAdded, ",") {
				t.Errorf("Added %v, want %v", m.Added, tt.wantAdded)
			}
			if strings.Join(m.Clashes, ",") != strings.Join(tt.wantClashes, ",") {
				t.Errorf("Clashes %v, want %v", m.Clashes, tt.wantClashes)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(string(m.Doc), s) {
					t.Errorf("merged document lacks %q:\n%s", s, m.Doc)
				}
			}
			// The base's users come first, as the base wrote them.
			if _, users, err := usersTree(m.Doc); err != nil || users.Content[0].Value != "internal" {
				t.Errorf("the base's user is not first (%v):\n%s", err, m.Doc)
			}
			// What the agent writes, it can read back: the portal's users
			// and no others, with their expiries to the second.
			carried, expires, err := CarriedUsers(m.Doc)
			if err != nil {
				t.Fatal(err)
			}
			if len(carried) != len(m.Added) {
				t.Errorf("carried users %v, want %v", carried, m.Added)
			}
			for _, name := range m.Added {
				if want := tt.expires[name].Truncate(time.Second); !expires[name].Equal(want) {
					t.Errorf("user %s: carried expiry %v, want %v", name, expires[name], want)
				}
			}
			if len(expires) != len(tt.expires) {
				t.Errorf("carried expiries %v, want those of %v", expires, tt.expires)
			}
		})
	}
}

// TestMergeWithTLSPassesToolkit writes a merged TLS base beside a real
// certificate and has exporter-toolkit's own web.Validate load it.
func TestMergeWithTLSPassesToolkit(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	base, err := ParseWebConfig([]byte("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: NoClientCert\n" +
		"basic_auth_users:\n  internal: " + hashOf(t, "internal-pw") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Merge(base, Users{"c-alice": hashOf(t, "alice-pw")}, Expiries{"c-alice": time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(path, m.Doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := web.Validate(path); err != nil {
		t.Fatalf("web.Validate: %v\n%s", err, m.Doc)
	}
}

func TestParseWebConfigRefuses(t *testing.T) {
	internal := hashOf(t, "internal-pw")
	tests := []struct {
		name, doc, wantErr string
	}{
		{"invalid hash", "basic_auth_users:\n  internal: secret\n", "not a bcrypt hash"},
		{"no users", "http_server_config:\n  http2: true\n", "no basic_auth_users"},
		{"users mapping with an anchor", "basic_auth_users: &u\n  internal: " + internal + "\n", ""},
		{"list at the top", "- a\n- b\n", "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWebConfig([]byte(tt.doc))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseWebConfig: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want ErrInvalid containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseUsers(t *testing.T) {
	alice := hashOf(t, "alice-pw")
	tests := []struct {
		name        string
		doc         string
		want        Users
		wantExpires Expiries
		wantErr     string
	}{
		{name: "users", doc: "basic_auth_users:\n  c-alice: " + alice + "\n", want: Users{"c-alice": alice}},
		{name: "an expiry", doc: "basic_auth_users:\n  c-alice: " + alice + " # from portal, expires 2027-02-23T10:02:40Z\n",
			want: Users{"c-alice": alice}, wantExpires: Expiries{"c-alice": expiry}},
		{name: "an expiry with an offset and a fraction", doc: "basic_auth_users:\n  c-alice: " + alice + " # from portal, expires 2027-02-23T11:02:40.5+01:00\n",
			want: Users{"c-alice": alice}, wantExpires: Expiries{"c-alice": expiry.Add(500 * time.Millisecond)}},
		{name: "an expiry after the name, the hash on the next line", doc: "basic_auth_users:\n  c-alice: # from portal, expires 2027-02-23T10:02:40Z\n    " + alice + "\n",
			want: Users{"c-alice": alice}, wantExpires: Expiries{"c-alice": expiry}},
		{name: "a bare marker is no expiry", doc: "basic_auth_users:\n  c-alice: " + alice + " # from portal\n",
			want: Users{"c-alice": alice}},
		{name: "another comment is not an expiry", doc: "# a note\nbasic_auth_users:\n  c-alice: " + alice + " # issued to the research team\n",
			want: Users{"c-alice": alice}},
		{name: "an expiry that is not a time", doc: "basic_auth_users:\n  c-alice: " + alice + " # from portal, expires tomorrow\n",
			wantErr: `user "c-alice": comment "# from portal, expires tomorrow": the expiry is not an RFC 3339 time`},
		{name: "an expiry without its time", doc: "basic_auth_users:\n  c-alice: " + alice + " # from portal, expires\n",
			wantErr: `want "# from portal" or "# from portal, expires <RFC 3339 time>"`},
		{name: "a marker with something else", doc: "basic_auth_users:\n  c-alice: " + alice + " # from portal (renewed)\n",
			wantErr: `user "c-alice": comment "# from portal (renewed)": want`},
		{name: "an expiry without a time zone", doc: "basic_auth_users:\n  c-alice: " + alice + " # from portal, expires 2027-02-23T10:02:40\n", wantErr: "not an RFC 3339 time"},
		{name: "two expiries", doc: "basic_auth_users:\n  c-alice: # from portal, expires 2027-02-23T10:02:40Z\n    " + alice + " # from portal, expires 2028-02-23T10:02:40Z\n",
			wantErr: "two portal markers"},
		{name: "none", doc: "basic_auth_users: {}\n", want: Users{}},
		{name: "HTML", doc: "<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n", wantErr: "cannot unmarshal"},
		{name: "truncated inside a hash", doc: "basic_auth_users:\n  c-alice: " + alice[:40], wantErr: "not a complete bcrypt hash"},
		{name: "truncated inside the structure", doc: "basic_auth_users:\n  c-alice: [\"" + alice, wantErr: "yaml"},
		{name: "empty body", doc: "", wantErr: "no basic_auth_users"},
		{name: "null users", doc: "basic_auth_users:\n", wantErr: "no basic_auth_users"},
		{name: "extra key", doc: "basic_auth_users: {}\ntls_server_config:\n  cert_file: /tmp/x\n", wantErr: "field tls_server_config not found"},
		{name: "unknown key", doc: "basic_auth_users: {}\nusers: {}\n", wantErr: "field users not found"},
		{name: "non-bcrypt hash", doc: "basic_auth_users:\n  c-alice: plaintext\n", wantErr: "not a complete bcrypt hash"},
		{name: "nested value", doc: "basic_auth_users:\n  c-alice: {a: b}\n", wantErr: "cannot unmarshal"},
		{name: "JSON is YAML too", doc: `{"basic_auth_users": {"c-alice": "` + alice + `"}}`, want: Users{"c-alice": alice}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, expires, err := ParseUsers([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line wrapping ErrInvalid containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseUsers: %v", err)
			}
			if len(got) != len(tt.want) || got["c-alice"] != tt.want["c-alice"] {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if expires == nil || len(expires) != len(tt.wantExpires) || !expires["c-alice"].Equal(tt.wantExpires["c-alice"]) {
				t.Errorf("expiries %v, want %v", expires, tt.wantExpires)
			}
		})
	}
}

func TestMarshalUsers(t *testing.T) {
	alice, bob := hashOf(t, "alice-pw"), hashOf(t, "bob-pw")
	tests := []struct {
		name    string
		users   Users
		expires Expiries
		want    string
	}{
		{"none", Users{}, nil, "basic_auth_users: {}\n"},
		{"sorted", Users{"c-bob": bob, "c-alice": alice}, nil,
			"basic_auth_users:\n  c-alice: " + alice + " # from portal\n  c-bob: " + bob + " # from portal\n"},
		{"expiries, in UTC, rounded down to the second", Users{"c-bob": bob, "c-alice": alice},
			Expiries{"c-alice": expiry.Add(999 * time.Millisecond).In(time.FixedZone("EST", -5*3600)), "c-bob": {}},
			"basic_auth_users:\n  c-alice: " + alice + " # from portal, expires 2027-02-23T10:02:40Z\n  c-bob: " + bob + " # from portal\n"},
		{"a name that needs quotes", Users{"yes": alice}, Expiries{"yes": expiry},
			"basic_auth_users:\n  \"yes\": " + alice + " # from portal, expires 2027-02-23T10:02:40Z\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := MarshalUsers(tt.users, tt.expires)
			if err != nil {
				t.Fatal(err)
			}
			if string(doc) != tt.want {
				t.Errorf("got %q, want %q", doc, tt.want)
			}
			if len(tt.users) > 0 {
				if err := validate(doc); err != nil {
					t.Errorf("exporter-toolkit would refuse the document: %v", err)
				}
			}
		})
	}
	if _, err := MarshalUsers(Users{"c-alice": "plain"}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("MarshalUsers of a plain password: %v, want ErrInvalid", err)
	}
	if _, err := MarshalUsers(Users{"c-alice": alice}, Expiries{"c-bob": expiry}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"c-bob"`) {
		t.Errorf("MarshalUsers with an expiry for a user not in the set: %v, want ErrInvalid naming c-bob", err)
	}
	if _, err := MarshalUsers(Users{"c-alice": alice}, Expiries{"c-alice": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("MarshalUsers with an expiry RFC 3339 cannot write: %v, want ErrInvalid", err)
	}
}

// TestUsersRoundTrip: what the portal writes, the agent reads back the same,
// and a document without expiries reads with no expiry at all.
func TestUsersRoundTrip(t *testing.T) {
	alice, bob, carol := hashOf(t, "alice-pw"), hashOf(t, "bob-pw"), hashOf(t, "carol-pw")
	users := Users{"c-alice": alice, "c-bob": bob, "null": carol, "a b#c": carol}
	expires := Expiries{
		"c-alice": expiry,
		"c-bob":   time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
		"a b#c":   time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	doc, err := MarshalUsers(users, expires)
	if err != nil {
		t.Fatal(err)
	}
	gotUsers, gotExpires, err := ParseUsers(doc)
	if err != nil {
		t.Fatalf("ParseUsers: %v\n%s", err, doc)
	}
	if !maps.Equal(gotUsers, users) {
		t.Errorf("users %v, want %v", gotUsers, users)
	}
	if !maps.EqualFunc(gotExpires, expires, time.Time.Equal) {
		t.Errorf("expiries %v, want %v\n%s", gotExpires, expires, doc)
	}

	old, err := MarshalUsers(users, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(old), "expires") {
		t.Errorf("a document without expiries holds expiries:\n%s", old)
	}
	gotUsers, gotExpires, err = ParseUsers(old)
	if err != nil || !maps.Equal(gotUsers, users) || len(gotExpires) != 0 {
		t.Errorf("without expiries: %v users, expiries %v (%v); want the users and no expiry", len(gotUsers), gotExpires, err)
	}
}

// TestOneMarker: the portal's document and the agent's file mark a user in
// the same words, and each reads the other's marks the same.
func TestOneMarker(t *testing.T) {
	internal, alice, bob := hashOf(t, "internal-pw"), hashOf(t, "alice-pw"), hashOf(t, "bob-pw")
	users := Users{"c-alice": alice, "c-bob": bob}
	expires := Expiries{"c-alice": expiry}
	published, err := MarshalUsers(users, expires)
	if err != nil {
		t.Fatal(err)
	}
	base, err := ParseWebConfig([]byte("basic_auth_users:\n  internal: " + internal + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Merge(base, users, expires)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"  c-alice: " + alice + " # from portal, expires 2027-02-23T10:02:40Z\n", "  c-bob: " + bob + " # from portal\n"} {
		if !strings.Contains(string(published), line) || !strings.Contains(string(m.Doc), line) {
			t.Errorf("%q is not in both documents:\n%s\n%s", line, published, m.Doc)
		}
	}
	for name, doc := range map[string][]byte{"the portal's document": published, "the agent's file": m.Doc} {
		carried, carriedExpires, err := CarriedUsers(doc)
		if err != nil || !maps.Equal(carried, users) || !maps.EqualFunc(carriedExpires, expires, time.Time.Equal) {
			t.Errorf("%s read as the agent's file: %v, %v (%v)", name, carried, carriedExpires, err)
		}
	}
	gotUsers, gotExpires, err := ParseUsers(published)
	if err != nil || !maps.Equal(gotUsers, users) || !maps.EqualFunc(gotExpires, expires, time.Time.Equal) {
		t.Errorf("the portal's document read as the portal's: %v, %v (%v)", gotUsers, gotExpires, err)
	}
}

// TestCarriedUsers reads the agent's own file back: current markers with
// their expiry, the bare marker older agents wrote, and comments that are
// not markers.
func TestCarriedUsers(t *testing.T) {
	internal, alice, bob, carol := hashOf(t, "internal-pw"), hashOf(t, "alice-pw"), hashOf(t, "bob-pw"), hashOf(t, "carol-pw")
	doc := "basic_auth_users:\n" +
		"  internal: " + internal + " # expires 2020-01-01T00:00:00Z\n" + // the base's comment: not the agent's
		"  c-alice: " + alice + " # from portal, expires 2027-02-23T10:02:40Z\n" +
		"  c-bob: " + bob + " # from portal\n" +
		"  c-carol: " + carol + " # from portal, expires soon\n" +
		"  c-dave: " + carol + " # from portal, expires 2027-02-23\n" +
		"  c-erin: " + carol + " # from portals\n"
	users, expires, err := CarriedUsers([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Users{"c-alice": alice, "c-bob": bob}); !maps.Equal(users, want) {
		t.Errorf("carried %v, want c-alice and c-bob: a garbled marker carries nobody", slices.Sorted(maps.Keys(users)))
	}
	if want := (Expiries{"c-alice": expiry}); !maps.EqualFunc(expires, want, time.Time.Equal) {
		t.Errorf("expiries %v, want %v", expires, want)
	}
	if _, _, err := CarriedUsers([]byte("basic_auth_users: [")); !errors.Is(err, ErrInvalid) {
		t.Errorf("an invalid file: %v, want ErrInvalid", err)
	}
}

// writeCert writes a self-signed server.crt and server.key into dir.
func writeCert(t testing.TB, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "prometheus.test"},
		DNSNames:     []string{"prometheus.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// validate is parseStrict's verdict alone.
func validate(doc []byte) error {
	_, err := parseStrict(doc)
	return err
}

// TestSecondYAMLDocumentRefused: exporter-toolkit reads the first YAML
// document of a web config and ignores the rest, so users or settings
// after a "---" look configured and are not. Every parser here refuses
// them, naming the line, where it would once have read the first document
// alone.
func TestSecondYAMLDocumentRefused(t *testing.T) {
	internal, alice := hashOf(t, "internal-pw"), hashOf(t, "alice-pw")
	base := "basic_auth_users:\n  internal: " + internal + "\n"
	users := "basic_auth_users:\n  c-alice: " + alice + " # from portal\n"
	parsers := []struct {
		name  string
		doc   string
		parse func([]byte) error
	}{
		{"ParseWebConfig", base, func(b []byte) error { _, err := ParseWebConfig(b); return err }},
		{"CarriedUsers", base, func(b []byte) error { _, _, err := CarriedUsers(b); return err }},
		{"ParseUsers", users, func(b []byte) error { _, _, err := ParseUsers(b); return err }},
	}
	tails := []struct {
		name, tail string
		line       int // of the "---", within tail
	}{
		{"a second mapping", "---\nbasic_auth_users:\n  mallory: " + alice + "\n", 1},
		{"a second document of settings", "---\ntls_server_config:\n  cert_file: /etc/shadow\n", 1},
		{"a bare separator", "---\n", 1},
		{"after an explicit end", "...\n---\nextra: 1\n", 2},
	}
	for _, p := range parsers {
		t.Run(p.name+" reads one document", func(t *testing.T) {
			if err := p.parse([]byte(p.doc)); err != nil {
				t.Fatalf("one document: %v", err)
			}
			if err := p.parse([]byte("---\n" + p.doc)); err != nil {
				t.Fatalf("one document opened by ---: %v", err)
			}
		})
		for _, tt := range tails {
			t.Run(p.name+" refuses "+tt.name, func(t *testing.T) {
				err := p.parse([]byte(p.doc + tt.tail))
				line := fmt.Sprintf("line %d:", strings.Count(p.doc, "\n")+tt.line)
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "second YAML document") ||
					!strings.Contains(err.Error(), line) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line wrapping ErrInvalid that names the second YAML document and its line", err)
				}
			})
		}
	}
	t.Run("an explicit end alone is one document", func(t *testing.T) {
		if _, err := ParseWebConfig([]byte(base + "...\n")); err != nil {
			t.Fatalf("ParseWebConfig: %v", err)
		}
	})
}
