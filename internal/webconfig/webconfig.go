// Package webconfig reads, checks, merges and writes Prometheus web
// configuration files (exporter-toolkit's --web.config.file): the portal
// renders a cluster's users with it, the agent merges them into the
// cluster's own file with it, and both check with it that nothing
// Prometheus would refuse is ever served or written.
package webconfig

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/exporter-toolkit/web"
	yaml2 "go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every error that reports a document Prometheus
// must not be given.
var ErrInvalid = errors.New("invalid web config")

// Users maps basic-auth usernames to bcrypt hashes of their passwords.
type Users map[string]string

// portalMarker is the comment the agent puts after each user it adds from
// the portal. A restarting agent reads it back to tell the portal's users in
// the file an earlier run left from that run's base users: without it, an
// internal user removed from the base would survive in the file as if the
// portal had sent it.
const portalMarker = "# from portal"

// generatedHeader opens every merged document, for whoever opens the file.
const generatedHeader = "# Written by `portal agent`: the cluster's base web config plus the portal's\n" +
	"# users (marked \"" + portalMarker + "\"). Edit the base, not this file: it is rewritten.\n"

// usersKey is the web config key that holds the basic-auth users.
const usersKey = "basic_auth_users"

// Validate reports whether doc is a web config that Prometheus loads and that
// asks for a password: it must parse exactly as exporter-toolkit parses
// --web.config.file on every request (strict YAML: no unknown key, no
// duplicate key, known TLS versions, ciphers, curves and headers), every
// basic_auth_users entry must hold a bcrypt hash, and there must be at least
// one such entry, because a web config without users serves Prometheus to
// anyone. TLS certificate and key files are not opened: they belong to
// Prometheus's container, and Prometheus checks them itself at start.
// Errors wrap ErrInvalid and fit on one line.
func Validate(doc []byte) error {
	_, err := parseStrict(doc)
	return err
}

// parseStrict reads doc the way exporter-toolkit's getConfig and
// validateUsers do, with the same YAML library, the same defaults and the
// same checks, and then requires at least one user.
func parseStrict(doc []byte) (web.Config, error) {
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

// ParseWebConfig parses a cluster's base web config: it must pass Validate,
// and its basic_auth_users must be a plain YAML mapping the portal's users
// can be added to (not an alias). Errors wrap ErrInvalid and fit on one line.
func ParseWebConfig(doc []byte) (*WebConfig, error) {
	cfg, err := parseStrict(doc)
	if err != nil {
		return nil, err
	}
	root, err := parseNode(doc)
	if err != nil {
		return nil, err
	}
	if _, err := usersNode(root); err != nil {
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
// back before it is returned: it must pass Validate, hold exactly the base's
// users and the added ones, and configure everything else exactly as the base
// does. A portal user that is not well formed (see ParseUsers) makes Merge
// fail. Errors wrap ErrInvalid.
func Merge(base *WebConfig, portal Users) (Merged, error) {
	if err := checkPortalUsers(portal); err != nil {
		return Merged{}, err
	}
	root, err := parseNode(base.raw)
	if err != nil {
		return Merged{}, err
	}
	users, err := usersNode(root)
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
		users.Content = append(users.Content, nameNode(name),
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: portal[name], LineComment: portalMarker})
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
	return m, nil
}

// ParseUsers parses a document the portal serves for a cluster: a mapping
// with the single key basic_auth_users, whose value maps usernames to bcrypt
// hashes ({} when the cluster has no active credential). Anything else is
// refused: an HTML page, a truncated or empty body, another key, a username
// that basic auth cannot carry (empty, with a colon or a control character),
// or a hash that is not a complete bcrypt hash ($2a$, $2b$ or $2y$, two-digit
// cost, 53 characters of salt and hash). The portal can call it on what it is
// about to serve. Errors wrap ErrInvalid and fit on one line.
func ParseUsers(doc []byte) (Users, error) {
	var d struct {
		Users *map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml2.UnmarshalStrict(doc, &d); err != nil {
		return nil, invalid("%s", oneLine(err.Error()))
	}
	if d.Users == nil {
		return nil, invalid("no %s mapping (an empty set is written %s: {})", usersKey, usersKey)
	}
	u := Users(*d.Users)
	if err := checkPortalUsers(u); err != nil {
		return nil, err
	}
	return u, nil
}

// MarshalUsers renders users as the document the portal serves for a
// cluster, names sorted, so that equal sets give equal bytes (and ETags).
// Errors wrap ErrInvalid when a user is not well formed (see ParseUsers).
func MarshalUsers(users Users) ([]byte, error) {
	if err := checkPortalUsers(users); err != nil {
		return nil, err
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, name := range slices.Sorted(maps.Keys(users)) {
		m.Content = append(m.Content, nameNode(name), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: users[name]})
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
	back, err := ParseUsers(doc)
	if err != nil || !maps.Equal(back, users) {
		return nil, invalid("rendered users do not read back the same")
	}
	return doc, nil
}

// CarriedUsers returns the users an earlier run of the agent added from the
// portal to doc, recognised by their marker comment. Returns an error
// wrapping ErrInvalid if doc is not a valid web config.
func CarriedUsers(doc []byte) (Users, error) {
	cfg, err := parseStrict(doc)
	if err != nil {
		return nil, err
	}
	root, err := parseNode(doc)
	if err != nil {
		return nil, err
	}
	users, err := usersNode(root)
	if err != nil {
		return nil, err
	}
	carried := Users{}
	for i := 0; i+1 < len(users.Content); i += 2 {
		k, v := users.Content[i], users.Content[i+1]
		if v.LineComment == portalMarker {
			if h, ok := cfg.Users[k.Value]; ok && string(h) == v.Value {
				carried[k.Value] = v.Value
			}
		}
	}
	return carried, nil
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

func nameNode(name string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}
	if !plainName.MatchString(name) || slices.Contains(yaml11Words, strings.ToLower(name)) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// parseNode parses doc into a YAML tree whose root is a mapping.
func parseNode(doc []byte) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, invalid("%s", oneLine(err.Error()))
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, invalid("the document is not a YAML mapping")
	}
	return &root, nil
}

// usersNode returns the mapping under basic_auth_users in root.
func usersNode(root *yaml.Node) (*yaml.Node, error) {
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != usersKey {
			continue
		}
		if v := m.Content[i+1]; v.Kind == yaml.MappingNode {
			return v, nil
		}
		return nil, invalid("%s must be written as a plain mapping of username: hash (not an alias or anchor reference)", usersKey)
	}
	return nil, invalid("no %s mapping", usersKey)
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
