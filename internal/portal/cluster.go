package portal

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultCredentialTTLDays is how long a credential lives unless the cluster says otherwise.
const DefaultCredentialTTLDays = 90

// Cluster is a 2i2c cluster whose Prometheus customers may query.
type Cluster struct {
	ID                int64
	Name              string // DNS label, e.g. "awi-ciroh"
	DisplayName       string
	PrometheusURL     string // given explicitly: hosts do not follow one pattern
	CredentialTTLDays int
	Note              string // shown to customers on the request form
	Enabled           bool   // a disabled cluster takes no new requests
	CreatedAt         time.Time
	UpdatedAt         time.Time
	// SyncTokenHash is the SHA-256 of the token the cluster's agent sends;
	// nil until staff create one.
	SyncTokenHash      []byte
	SyncTokenCreatedAt *time.Time
	// Policy says who is approved at once and how many staff must agree.
	Policy Policy
}

// Title is the name to show: the display name, else the DNS name.
func (c *Cluster) Title() string {
	if c.DisplayName != "" {
		return c.DisplayName
	}
	return c.Name
}

// CredentialTTL is the lifetime of a credential issued for c.
func (c *Cluster) CredentialTTL() time.Duration {
	return time.Duration(c.CredentialTTLDays) * 24 * time.Hour
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidClusterName reports whether name is a cluster name the portal
// accepts: a DNS label of lower-case letters, digits and dashes, at most 63,
// not starting or ending with a dash. Validate and the agent's configuration
// both check with it, so an agent cannot be set up for a name no cluster can
// have.
func ValidClusterName(name string) bool {
	return dnsLabel.MatchString(name)
}

// Limits of a cluster's fields.
const (
	MaxClusterTTLDays     = 3650
	MaxClusterDisplayName = 100
	MaxClusterNote        = 1000
)

// Normalize trims c's text fields and lower-cases its name.
func (c *Cluster) Normalize() {
	c.Name = strings.ToLower(strings.TrimSpace(c.Name))
	c.DisplayName = strings.TrimSpace(c.DisplayName)
	c.PrometheusURL = strings.TrimRight(strings.TrimSpace(c.PrometheusURL), "/")
	c.Note = strings.TrimSpace(c.Note)
	c.Policy.normalize()
}

// Validate checks c's fields and returns an Error of KindInvalid naming the first
// one that is wrong and what to write instead.
func (c *Cluster) Validate() error {
	// Every problem at once, so a form can show each beside its field.
	var errs []error
	if !ValidClusterName(c.Name) {
		errs = append(errs, Invalid("name", "The name must be a DNS label: lower-case letters, digits and dashes, at most 63, not starting or ending with a dash (for example awi-ciroh)."))
	}
	if _, err := CleanLine("display_name", c.DisplayName, MaxClusterDisplayName); err != nil {
		errs = append(errs, err)
	}
	u, err := url.Parse(c.PrometheusURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		!ValidPrometheusURL(c.PrometheusURL) {
		errs = append(errs, Invalid("prometheus_url", "The Prometheus URL must be an https address such as https://prometheus.%s.2i2c.cloud, with no query, credentials, spaces, quotes or backslashes, and in ASCII (an international domain in its xn-- form).", c.Name))
	}
	ttlOK := c.CredentialTTLDays >= 1 && c.CredentialTTLDays <= MaxClusterTTLDays
	if !ttlOK {
		errs = append(errs, Invalid("credential_ttl_days", "The credential lifetime must be between 1 and %d days.", MaxClusterTTLDays))
	}
	if _, err := CleanText("note", c.Note, MaxClusterNote); err != nil {
		errs = append(errs, err)
	}
	if ttlOK { // the policy's bounds are checked against a lifetime that makes sense
		if err := c.Policy.validate(c.CredentialTTLDays); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// prometheusURLPattern admits the URLs credentials.txt can quote in a shell
// command: printable ASCII (an international domain in its xn-- form), no
// white space, quote or backslash. Anything else, invalid UTF-8 included,
// would reach PostgreSQL, which refuses that, or a shell.
var prometheusURLPattern = regexp.MustCompile(`^https?://[!#-&(-\[\]-~]+$`)

// ValidPrometheusURL reports whether u can be written into credentials.txt.
// Cluster validation and issuance both check with it, so a cluster that
// saves is a cluster whose credentials can be issued.
func ValidPrometheusURL(u string) bool { return prometheusURLPattern.MatchString(u) }
