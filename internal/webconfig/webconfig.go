// Package webconfig reads, checks, merges and writes Prometheus web
// configuration files (exporter-toolkit's --web.config.file): the portal
// renders a cluster's users with it, the agent merges them into the
// cluster's own file with it, and both check with it that nothing
// Prometheus would refuse is ever served or written. It also holds the rest
// of the publication's contract between the two: where the portal serves a
// cluster's users and how long it may hold a long-poll.
package webconfig

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/exporter-toolkit/web"
	yaml2 "go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// MaxWait is the longest the portal holds a long-poll of the publication
// (?wait=) before answering 304: proxies and load balancers cut idle
// requests after a minute or so.
const MaxWait = 60 * time.Second

// MaxBcryptCost is the highest bcrypt cost `portal agent` accepts in the
// portal's answer, and so the highest the portal may issue at.
// exporter-toolkit checks one bcrypt hash at a time, behind one mutex, for
// every uncached login: a hash of cost 12 takes about a quarter of a second
// of one core; cost 31 takes about 2^19 times that, a day and a half, during
// which no other user (2i2c's internal user included) can sign in.
const MaxBcryptCost = 12

// PublicationPath is the path, from the portal's base URL, of the document
// the portal serves for the cluster named cluster.
func PublicationPath(cluster string) string {
	return "/api/v1/clusters/" + cluster + "/web-config.yml"
}

// ErrInvalid is wrapped by every error that reports a document Prometheus
// must not be given.
var ErrInvalid = errors.New("invalid web config")

// Users maps basic-auth usernames to bcrypt hashes of their passwords.
type Users map[string]string

// Expiries maps usernames to the moment their credential expires. A user
// missing from it, or with the zero time, has no known expiry.
type Expiries map[string]time.Time

// portalMarker opens the comment after each portal user, in the document
// the portal serves and in the file the agent writes alike, followed by
// ", expires <RFC 3339 time>" when the user's expiry is known (see marker).
// The expiry lets the agent drop the user on time even while the portal is
// unreachable. In the agent's file the marker also tells a restarting agent
// the portal's users from the base users of the run that wrote it: without
// it, an internal user removed from the base would survive in the file as if
// the portal had sent it.
const portalMarker = "# from portal"

// generatedHeader opens every merged document, for whoever opens the file.
const generatedHeader = "# Written by `portal agent`: the cluster's base web config plus the portal's\n" +
	"# users (marked \"" + portalMarker + "\", with their expiry). Edit the base, not this file: it is rewritten.\n"

// formatExpiry writes an expiry as the documents carry it: RFC 3339 in UTC,
// rounded down to the second, so that a reader drops a user early rather
// than late.
func formatExpiry(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// sameExpiry reports whether got is want as formatExpiry writes it (both
// zero for an unknown expiry).
func sameExpiry(got, want time.Time) bool {
	if got.IsZero() || want.IsZero() {
		return got.IsZero() && want.IsZero()
	}
	return got.Equal(want.Truncate(time.Second))
}

// marker is the line comment after a portal user, with its expiry when
// known: "# from portal, expires 2027-02-23T10:02:40Z", or "# from portal".
func marker(expires time.Time) string {
	if expires.IsZero() {
		return portalMarker
	}
	return portalMarker + ", expires " + formatExpiry(expires)
}

// parseMarker reads a user's line comment. ok is false, with no error, for
// a comment that is not a marker (none, or a base user's own). A comment
// that starts as a marker must be one of the two forms marker writes, or
// err says what is wrong: the caller decides what a garbled marker costs.
func parseMarker(comment string) (expires time.Time, ok bool, err error) {
	rest, found := strings.CutPrefix(comment, portalMarker)
	if !found {
		return time.Time{}, false, nil
	}
	if rest == "" {
		return time.Time{}, true, nil
	}
	at, found := strings.CutPrefix(rest, ", expires ")
	if !found {
		return time.Time{}, false, fmt.Errorf("comment %q: want %q or %q", comment, portalMarker, portalMarker+", expires <RFC 3339 time>")
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("comment %q: the expiry is not an RFC 3339 time", comment)
	}
	return t, true, nil
}

// userMarker reads the marker of the user whose name and hash are k and v
// in a basic_auth_users mapping. The comment follows the hash, or the name
// when the hash is on the next line; a user with both is refused, since
// which expiry holds would be a guess.
func userMarker(k, v *yaml.Node) (expires time.Time, ok bool, err error) {
	for _, c := range []string{k.LineComment, v.LineComment} {
		t, found, err := parseMarker(c)
		if err != nil {
			return time.Time{}, false, err
		}
		if !found {
			continue
		}
		if ok {
			return time.Time{}, false, errors.New("two portal markers")
		}
		expires, ok = t, true
	}
	return expires, ok, nil
}

// usersKey is the web config key that holds the basic-auth users.
const usersKey = "basic_auth_users"

// parseStrict reads doc as a web config that Prometheus loads and that asks
// for a password: it must parse exactly as exporter-toolkit's getConfig and
// validateUsers parse --web.config.file on every request, with the same YAML
// library, defaults and checks (strict YAML: no unknown key, no duplicate
// key, known TLS versions, ciphers, curves and headers), every
// basic_auth_users entry must hold a bcrypt hash, and there must be at least
// one such entry, because a web config without users serves Prometheus to
// anyone. TLS certificate and key files are not opened: they belong to
// Prometheus's container, and Prometheus checks them itself at start.
// Errors wrap ErrInvalid and fit on one line.
func parseStrict(doc []byte) (web.Config, error) {
	if err := oneDocument(doc); err != nil {
		return web.Config{}, err
	}
	c := web.Config{
		TLSConfig: web.TLSConfig{
			MinVersion:               tls.VersionTLS12,
			MaxVersion:               tls.VersionTLS13,
			PreferServerCipherSuites: true,
		},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}
	if err := yaml2.UnmarshalStrict(doc, &c); err != nil {
		return web.Config{}, invalid("%s", oneLine(err.Error()))
	}
	if err := checkHeaders(c.HTTPConfig.Header); err != nil {
		return web.Config{}, err
	}
	if len(c.Users) == 0 {
		return web.Config{}, invalid("no %s: Prometheus would answer anyone without a password", usersKey)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Users)) {
		if _, err := bcrypt.Cost([]byte(c.Users[name])); err != nil {
			return web.Config{}, invalid("%s: user %q: not a bcrypt hash (%s)", usersKey, name, strings.TrimPrefix(err.Error(), "crypto/bcrypt: "))
		}
	}
	return c, nil
}

// oneDocument refuses a stream of more than one YAML document, even an
// empty second one after a bare "---". exporter-toolkit (like every
// yaml.Unmarshal) reads the first document and silently ignores the rest,
// so users or settings written after a "---" would look configured and do
// nothing, or, in the portal's answer, hide what the agent never applies.
// Errors wrap ErrInvalid, name the second document's line and fit on one
// line.
func oneDocument(doc []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	var first yaml.Node
	if err := dec.Decode(&first); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // no document at all: the caller's own checks say what is missing
		}
		return invalid("%s", oneLine(err.Error()))
	}
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return invalid("a second YAML document follows the first and does not parse (%s): write one document, with no \"---\" after it",
			oneLine(err.Error()))
	}
	return invalid("a second YAML document starts near line %d: Prometheus reads only the first, so remove the \"---\" and what follows it, or move its keys into the first",
		secondDocumentLine(doc, first))
}

// secondDocumentLine is the line of the "---" that ends the document first,
// found by the first line at or after the end of first's content that
// starts with "---" (a yaml.Node carries where it starts, not where it
// ends).
func secondDocumentLine(doc []byte, first yaml.Node) int {
	last := lastLine(&first)
	for i, line := range bytes.Split(doc, []byte("\n")) {
		if i+1 >= last && bytes.HasPrefix(line, []byte("---")) {
			return i + 1
		}
	}
	return last
}

// lastLine is the highest line any node under n starts on.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		l = max(l, lastLine(c))
	}
	return l
}

// allowedHeaders copies exporter-toolkit's list of the response headers a web
// config may set, and the values each may take (nil: any value). The toolkit
// keeps its list private, on purpose, so it is repeated here; a header it
// added later would be refused here, which is the safe direction.
var allowedHeaders = map[string][]string{
	"Strict-Transport-Security": nil,
	"X-Content-Type-Options":    {"nosniff"},
	"X-Frame-Options":           {"deny", "sameorigin"},
	"X-XSS-Protection":          nil,
	"Content-Security-Policy":   nil,
}

func checkHeaders(headers map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(headers)) {
		values, ok := allowedHeaders[k]
		if !ok {
			return invalid("http_server_config: header %q can not be configured", k)
		}
		if len(values) > 0 && !slices.Contains(values, headers[k]) {
			return invalid("http_server_config: header %s: want one of %q, got %q", k, values, headers[k])
		}
	}
	return nil
}

// WebConfig is a cluster's own web config, parsed and checked: the base the
// portal's users are merged into. Build one with ParseWebConfig.
type WebConfig struct {
	raw []byte     // the document as given, re-read for each merge
	cfg web.Config // what exporter-toolkit reads from it
}

// ParseWebConfig parses a cluster's base web config: it must pass parseStrict,
// and its basic_auth_users must be a plain YAML mapping the portal's users
// can be added to (not an alias). Errors wrap ErrInvalid and fit on one line.
func ParseWebConfig(doc []byte) (*WebConfig, error) {
	cfg, err := parseStrict(doc)
	if err != nil {
		return nil, err
	}
	if _, _, err := usersTree(doc); err != nil {
		return nil, err
	}
	return &WebConfig{raw: bytes.Clone(doc), cfg: cfg}, nil
}

// TLSFiles returns the files the config's tls_server_config names, by key
// (cert_file, key_file, client_ca_file); unset ones are left out.
func (c *WebConfig) TLSFiles() map[string]string {
	tc := c.cfg.TLSConfig
	files := map[string]string{}
	for key, path := range map[string]string{"cert_file": tc.TLSCertPath, "key_file": tc.TLSKeyPath, "client_ca_file": tc.ClientCAs} {
		if path != "" {
			files[key] = path
		}
	}
	return files
}

// Users returns a copy of the base's own users.
func (c *WebConfig) Users() Users {
	u := make(Users, len(c.cfg.Users))
	for name, h := range c.cfg.Users {
		u[name] = string(h)
	}
	return u
}

// Merged is the outcome of Merge.
type Merged struct {
	// Doc is the web config to write: the base, byte for byte where it can
	// be, with the portal's users appended to its basic_auth_users.
	Doc []byte
	// Added names the portal users Doc holds, sorted.
	Added []string
	// Clashes names the portal users left out because the base already has
	// a user of that name, sorted.
	Clashes []string
}

// Merge adds the portal's users to the base's basic_auth_users and returns
// the result. Everything else in the base (comments, key order, TLS and HTTP
// settings, keys this package does not know of) is kept: the merge edits the
// YAML document, not a struct. A base user wins any name clash, so 2i2c's
// internal user can never be replaced from the portal. The result is read
// back before it is returned: it must pass parseStrict, hold exactly the base's
// users and the added ones, with their markers and expiries, and configure
// everything else exactly as the base does. Each added user is marked with a
// comment carrying its expiry from expires, when known, for CarriedUsers.
// Merge does not drop expired users: that is the caller's decision, made
// with its clock. A portal user that is not well formed (see ParseUsers), or
// an expiry for a user not in portal, makes Merge fail. Errors wrap
// ErrInvalid.
func Merge(base *WebConfig, portal Users, expires Expiries) (Merged, error) {
	if err := checkPortalUsers(portal); err != nil {
		return Merged{}, err
	}
	if err := checkExpiries(portal, expires); err != nil {
		return Merged{}, err
	}
	root, users, err := usersTree(base.raw)
	if err != nil {
		return Merged{}, err
	}
	var m Merged
	for _, name := range slices.Sorted(maps.Keys(portal)) {
		if _, ok := base.cfg.Users[name]; ok {
			m.Clashes = append(m.Clashes, name)
			continue
		}
		m.Added = append(m.Added, name)
		users.Content = append(users.Content, nameNode(name), portalUserNode(portal[name], expires[name]))
	}
	if len(m.Added) > 0 {
		// A flow mapping ({a: b}) cannot carry the marker comments.
		users.Style &^= yaml.FlowStyle
	}
	doc, err := encodeNode(root)
	if err != nil {
		return Merged{}, err
	}
	m.Doc = append([]byte(generatedHeader+"\n"), doc...)

	// Read the result back as Prometheus will.
	got, err := parseStrict(m.Doc)
	if err != nil {
		return Merged{}, fmt.Errorf("merged document: %w", err)
	}
	want := base.Users()
	for _, name := range m.Added {
		want[name] = portal[name]
	}
	if len(got.Users) != len(want) {
		return Merged{}, invalid("merged document reads back with %d users, want %d", len(got.Users), len(want))
	}
	for name, h := range want {
		if string(got.Users[name]) != h {
			return Merged{}, invalid("merged document reads back with user %q changed or missing", name)
		}
	}
	got.Users = nil
	baseCfg := base.cfg
	baseCfg.Users = nil
	if !reflect.DeepEqual(got, baseCfg) {
		return Merged{}, invalid("merged document reads back with settings other than %s changed", usersKey)
	}
	// And as a restarting agent will: the added users, with their expiries.
	// (A base user whose own comment looks like the marker reads back as
	// carried too; the base wins that clash at the next start, as now.)
	carried, carriedExpires, err := CarriedUsers(m.Doc)
	if err != nil {
		return Merged{}, fmt.Errorf("merged document: %w", err)
	}
	for _, name := range m.Added {
		if carried[name] != portal[name] || !sameExpiry(carriedExpires[name], expires[name]) {
			return Merged{}, invalid("merged document reads back with the marker of user %q changed or missing", name)
		}
	}
	return m, nil
}

// ParseUsers parses a document the portal serves for a cluster: a mapping
// with the single key basic_auth_users, whose value maps usernames to bcrypt
// hashes ({} when the cluster has no active credential), and returns the
// users and the expiries their markers carry ("# from portal, expires
// <RFC 3339 time>", as MarshalUsers and Merge write them). A user with a
// bare marker, or with none (older portals write none), has no known expiry
// and is left out of the expiries. Anything else is refused: an
// HTML page, a truncated or empty body, another key, a username that basic
// auth cannot carry (empty, with a colon or a control character), a hash
// that is not a complete bcrypt hash ($2a$, $2b$ or $2y$, two-digit cost, 53
// characters of salt and hash), or a comment starting "# from portal" that
// is not a marker, such as one whose time does not parse: the document is
// the portal's own, and a garbled expiry is a garbled document. Other
// comments are ignored. The portal can call it on what it is about to
// serve. Errors wrap ErrInvalid and fit on one line.
func ParseUsers(doc []byte) (Users, Expiries, error) {
	if err := oneDocument(doc); err != nil {
		return nil, nil, err
	}
	var d struct {
		Users *map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml2.UnmarshalStrict(doc, &d); err != nil {
		return nil, nil, invalid("%s", oneLine(err.Error()))
	}
	if d.Users == nil {
		return nil, nil, invalid("no %s mapping (an empty set is written %s: {})", usersKey, usersKey)
	}
	u := Users(*d.Users)
	if err := checkPortalUsers(u); err != nil {
		return nil, nil, err
	}
	expires, err := parseExpiries(doc, u)
	if err != nil {
		return nil, nil, err
	}
	return u, expires, nil
}

// parseExpiries reads the markers of the users in doc, which ParseUsers
// has read as users.
func parseExpiries(doc []byte, users Users) (Expiries, error) {
	expires := Expiries{}
	_, m, err := usersTree(doc)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		t, ok, err := userMarker(k, v)
		if err != nil {
			return nil, invalid("%s: user %q: %s", usersKey, k.Value, err)
		}
		if !ok || t.IsZero() {
			continue
		}
		if _, known := users[k.Value]; !known {
			return nil, invalid("%s: an expiry for %q, which does not read as one of the users", usersKey, k.Value)
		}
		expires[k.Value] = t
	}
	return expires, nil
}

// MarshalUsers renders users as the document the portal serves for a
// cluster, names sorted, so that equal sets give equal bytes (and ETags).
// Each user is marked as Merge marks it, with its expiry from expires when
// known, to the second, rounded down ("c-abc: $2a$… # from portal, expires
// 2027-02-23T10:02:40Z"), so that the agent can drop it on time even when it
// cannot reach the portal. Errors wrap ErrInvalid when a user is not well
// formed (see ParseUsers) or expires names a user not in users.
func MarshalUsers(users Users, expires Expiries) ([]byte, error) {
	if err := checkPortalUsers(users); err != nil {
		return nil, err
	}
	if err := checkExpiries(users, expires); err != nil {
		return nil, err
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, name := range slices.Sorted(maps.Keys(users)) {
		m.Content = append(m.Content, nameNode(name), portalUserNode(users[name], expires[name]))
	}
	if len(users) == 0 {
		m.Style = yaml.FlowStyle
	}
	doc, err := encodeNode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{
		Kind: yaml.MappingNode, Tag: "!!map",
		Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: usersKey}, m},
	}}})
	if err != nil {
		return nil, err
	}
	back, backExpires, err := ParseUsers(doc)
	if err != nil || !maps.Equal(back, users) {
		return nil, invalid("rendered users do not read back the same")
	}
	for name := range users {
		if !sameExpiry(backExpires[name], expires[name]) {
			return nil, invalid("rendered users do not read back with the same expiries")
		}
	}
	return doc, nil
}

// checkExpiries refuses an expiry for a user who is not in users: the two
// maps describe one set.
func checkExpiries(users Users, expires Expiries) error {
	for _, name := range slices.Sorted(maps.Keys(expires)) {
		if _, ok := users[name]; !ok {
			return invalid("%s: an expiry for %q, who is not among the users", usersKey, name)
		}
	}
	return nil
}

// CarriedUsers returns the users an earlier run of the agent added from the
// portal to doc, recognised by their marker comment, and the expiries the
// markers carry. A bare marker (written before markers carried expiries)
// gives a user with no known expiry. A marker whose expiry does not parse
// is not a marker: that user is not carried, so a garbled expiry can only
// remove a user, never keep one past its time. Other comments, such as a
// base user's, are ignored. Returns an error wrapping ErrInvalid if doc is
// not a valid web config.
func CarriedUsers(doc []byte) (Users, Expiries, error) {
	cfg, err := parseStrict(doc)
	if err != nil {
		return nil, nil, err
	}
	_, users, err := usersTree(doc)
	if err != nil {
		return nil, nil, err
	}
	carried, expires := Users{}, Expiries{}
	for i := 0; i+1 < len(users.Content); i += 2 {
		k, v := users.Content[i], users.Content[i+1]
		t, ok, err := userMarker(k, v)
		if err != nil || !ok {
			continue
		}
		if h, ok := cfg.Users[k.Value]; ok && string(h) == v.Value {
			carried[k.Value] = v.Value
			if !t.IsZero() {
				expires[k.Value] = t
			}
		}
	}
	return carried, expires, nil
}

// bcryptHash is a complete bcrypt hash as Go, htpasswd and Python write it.
var bcryptHash = regexp.MustCompile(`^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

func checkPortalUsers(users Users) error {
	for _, name := range slices.Sorted(maps.Keys(users)) {
		if err := checkUsername(name); err != nil {
			return err
		}
		h := users[name]
		if !bcryptHash.MatchString(h) {
			return invalid("%s: user %q: not a complete bcrypt hash", usersKey, name)
		}
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return invalid("%s: user %q: not a bcrypt hash (%s)", usersKey, name, strings.TrimPrefix(err.Error(), "crypto/bcrypt: "))
		}
	}
	return nil
}

// checkUsername refuses names basic auth cannot carry: the user-id of RFC
// 7617 holds no colon and no control character.
func checkUsername(name string) error {
	switch {
	case name == "":
		return invalid("%s: empty username", usersKey)
	case len(name) > 256:
		return invalid("%s: username longer than 256 bytes", usersKey)
	case !utf8.ValidString(name):
		return invalid("%s: username %q is not UTF-8", usersKey, name)
	case strings.ContainsRune(name, ':'):
		return invalid("%s: username %q holds a colon, which basic auth cannot carry", usersKey, name)
	case strings.ContainsFunc(name, unicode.IsControl):
		return invalid("%s: username %q holds a control character", usersKey, name)
	}
	return nil
}

// plainName matches names every YAML reader takes as the same string when
// written without quotes; YAML 1.1 readers (exporter-toolkit's) take the
// words in yaml11Words as booleans or null.
var plainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

var yaml11Words = []string{"y", "n", "yes", "no", "on", "off", "true", "false", "null"}

// portalUserNode is a portal user's hash with its marker.
func portalUserNode(hash string, expires time.Time) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: hash, LineComment: marker(expires)}
}

func nameNode(name string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}
	if !plainName.MatchString(name) || slices.Contains(yaml11Words, strings.ToLower(name)) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// usersTree parses doc into a YAML tree whose root is a mapping, and finds
// the mapping under basic_auth_users in it.
func usersTree(doc []byte) (root, users *yaml.Node, err error) {
	var tree yaml.Node
	if err := yaml.Unmarshal(doc, &tree); err != nil {
		return nil, nil, invalid("%s", oneLine(err.Error()))
	}
	if tree.Kind != yaml.DocumentNode || len(tree.Content) != 1 || tree.Content[0].Kind != yaml.MappingNode {
		return nil, nil, invalid("the document is not a YAML mapping")
	}
	m := tree.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != usersKey {
			continue
		}
		if v := m.Content[i+1]; v.Kind == yaml.MappingNode {
			return &tree, v, nil
		}
		return nil, nil, invalid("%s must be written as a plain mapping of username: hash (not an alias or anchor reference)", usersKey)
	}
	return nil, nil, invalid("no %s mapping", usersKey)
}

func encodeNode(root *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, invalid("encode: %s", oneLine(err.Error()))
	}
	if err := enc.Close(); err != nil {
		return nil, invalid("encode: %s", oneLine(err.Error()))
	}
	return b.Bytes(), nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// oneLine joins a multi-line YAML error into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// MarshalHtpasswd renders users as htpasswd lines ("name:hash"), names
// sorted, for nginx-style basic-auth secrets. Users are checked as for
// MarshalUsers; errors wrap ErrInvalid.
func MarshalHtpasswd(users Users) ([]byte, error) {
	if err := checkPortalUsers(users); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(users)) {
		b.WriteString(name + ":" + users[name] + "\n")
	}
	return b.Bytes(), nil
}
