package portal

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Policy is a cluster's access policy: who is approved at once, how many
// staff must agree otherwise, and how long what is granted may live.
type Policy struct {
	// AutoApproveEmailDomains approves at once a request by a person whose
	// verified email is in one of these domains (exactly: not subdomains).
	AutoApproveEmailDomains []string
	// AutoApproveGroups approves at once a request by a member of one of
	// these groups, from the identity provider's groups claim.
	AutoApproveGroups []string
	// ApprovalsRequired is how many distinct staff must approve a request
	// that no rule approved: 1 or 2 (0 is the default, 1). Never the
	// requester.
	ApprovalsRequired int
	// MaxTTLDays is the longest lifetime staff may grant at approval; 0 means
	// the cluster's credential lifetime is also the longest.
	MaxTTLDays int
	// RequestTTLDays is how long a request may wait for a decision before it
	// expires; 0 means the portal's default (PORTAL_REQUEST_TTL).
	RequestTTLDays int
}

// Limits of a policy's fields.
const (
	MaxApprovalsRequired = 2
	MaxPolicyEntries     = 50 // domains, and groups, each
	MaxRequestTTLDays    = 365
	maxGroupName         = 200
)

// DefaultPolicy is the policy of a cluster that sets none: one member of
// staff approves each request.
func DefaultPolicy() Policy { return Policy{ApprovalsRequired: 1} }

// AutoApproves reports whether the policy approves u's requests at once,
// and names the rule that matched ("email_domain" or "group") and what it
// matched. An unverified email never matches: anyone can claim an address
// they do not own.
func (p *Policy) AutoApproves(u *User) (rule, matched string, ok bool) {
	if u == nil {
		return "", "", false
	}
	if u.EmailVerified {
		if d := emailDomain(u.Email); containsFold(p.AutoApproveEmailDomains, d) {
			return RuleEmailDomain, strings.ToLower(d), true
		}
	}
	for _, g := range u.Groups {
		if slices.Contains(p.AutoApproveGroups, g) {
			return RuleGroup, g, true
		}
	}
	return "", "", false
}

// Matches reports whether a rule of the policy approves u's requests at
// once.
func (p *Policy) Matches(u *User) bool {
	_, _, ok := p.AutoApproves(u)
	return ok
}

// The auto-approval rules an audit event names.
const (
	RuleEmailDomain = "email_domain"
	RuleGroup       = "group"
)

// DescribeRule says which rule approved a request, as a person reads it:
// "verified @earthscope.org address", "member of earthscope-admins".
func DescribeRule(rule, matched string) string {
	if rule == RuleEmailDomain {
		return "verified @" + matched + " address"
	}
	return "member of " + matched
}

// Required is how many distinct staff must approve a request no rule
// approved.
func (p *Policy) Required() int { return max(p.ApprovalsRequired, 1) }

// AutoApproval says whether anyone is approved at once.
func (p *Policy) AutoApproval() bool {
	return len(p.AutoApproveEmailDomains) > 0 || len(p.AutoApproveGroups) > 0
}

// freeMailDomains are addresses anyone can have: a rule approving them
// approves the world.
var freeMailDomains = []string{
	"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
	"icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.net", "mail.com",
	"yandex.com", "zoho.com", "fastmail.com", "qq.com", "163.com",
}

// normalize lower-cases and trims the domains, trims the groups, and drops
// empty entries and repeats.
func (p *Policy) normalize() {
	clean := func(list []string, lower bool) []string {
		var out []string
		for _, s := range list {
			s = strings.TrimSpace(s)
			if lower {
				s = strings.ToLower(strings.TrimPrefix(s, "@"))
			}
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return out
	}
	p.AutoApproveEmailDomains = clean(p.AutoApproveEmailDomains, true)
	p.AutoApproveGroups = clean(p.AutoApproveGroups, false)
	if p.ApprovalsRequired == 0 {
		p.ApprovalsRequired = 1
	}
}

// validate checks the policy of a cluster whose default credential lifetime
// is ttlDays. Returns an Error of KindInvalid naming the field at fault.
func (p *Policy) validate(ttlDays int) error {
	if len(p.AutoApproveEmailDomains) > MaxPolicyEntries || len(p.AutoApproveGroups) > MaxPolicyEntries {
		return Invalid("auto_approve", "List at most %d email domains and %d groups.", MaxPolicyEntries, MaxPolicyEntries)
	}
	for _, d := range p.AutoApproveEmailDomains {
		// CleanText first: a pasted secret is refused as one, never quoted back.
		if _, err := CleanText("auto_approve_email_domains", d, 253); err != nil {
			return err
		}
		if err := checkApprovedDomain(d); err != nil {
			return err
		}
	}
	for _, g := range p.AutoApproveGroups {
		if _, err := CleanText("auto_approve_groups", g, maxGroupName); err != nil {
			return err
		}
		if strings.ContainsAny(g, " \t\r\n,") {
			return Invalid("auto_approve_groups", "A group name has no spaces or commas: %q is not one. Put one group per line.", g)
		}
	}
	if p.ApprovalsRequired < 0 || p.ApprovalsRequired > MaxApprovalsRequired {
		return Invalid("approvals_required", "Approvals required must be 1 or 2.")
	}
	if p.MaxTTLDays != 0 && (p.MaxTTLDays < ttlDays || p.MaxTTLDays > MaxClusterTTLDays) {
		return Invalid("max_ttl_days", "The longest lifetime must be between the credential lifetime (%d days) and %d days, or empty for no longer than the credential lifetime.",
			ttlDays, MaxClusterTTLDays)
	}
	if p.RequestTTLDays < 0 || p.RequestTTLDays > MaxRequestTTLDays {
		return Invalid("request_ttl_days", "Requests may wait between 1 and %d days, or leave it empty for the portal's default.", MaxRequestTTLDays)
	}
	return nil
}

// checkApprovedDomain refuses a domain that is not a registrable domain of
// one organisation: a public suffix (com, ac.uk) or a free mail provider
// would approve anyone who signs up.
func checkApprovedDomain(d string) error {
	if !validHostname(d) || !strings.Contains(d, ".") {
		return Invalid("auto_approve_email_domains", "%q is not an email domain; write it as in the address after the @, such as earthscope.org.", d)
	}
	if suffix, icann := publicsuffix.PublicSuffix(d); suffix == d && icann {
		return Invalid("auto_approve_email_domains", "%s is a public suffix that anyone can register under; name the organisation's own domain.", d)
	}
	if slices.Contains(freeMailDomains, d) {
		return Invalid("auto_approve_email_domains", "%s is a free mail provider: anyone can have an address there. Name the organisation's own domain, or a group.", d)
	}
	return nil
}

// validHostname reports whether d is a DNS name of lower-case labels.
func validHostname(d string) bool {
	if len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if !ValidClusterName(label) {
			return false
		}
	}
	return true
}

// MaxTTL is the longest lifetime staff may grant on c.
func (c *Cluster) MaxTTL() time.Duration {
	days := c.Policy.MaxTTLDays
	if days < c.CredentialTTLDays {
		days = c.CredentialTTLDays
	}
	return time.Duration(days) * 24 * time.Hour
}

// RequestTTL is how long a request for c may wait for a decision: the
// policy's, else def.
func (c *Cluster) RequestTTL(def time.Duration) time.Duration {
	if c.Policy.RequestTTLDays > 0 {
		return time.Duration(c.Policy.RequestTTLDays) * 24 * time.Hour
	}
	return def
}

// Expiry is when a credential issued on c at now expires when staff chose
// the last day it works, expiresOn (a date; zero, or the day the default
// lifetime ends, for the cluster's default lifetime). It works until the end
// of that day, in UTC, and never longer than the longest lifetime. Returns an
// Error of KindInvalid for a day that has passed (or leaves less than an
// hour) or that lies beyond the longest lifetime.
func (c *Cluster) Expiry(now time.Time, expiresOn time.Time) (time.Time, error) {
	byDefault := now.Add(c.CredentialTTL())
	if expiresOn.IsZero() || expiresOn.Format(DateFormat) == byDefault.UTC().Format(DateFormat) {
		// The form offers the default's day: choosing it keeps the default.
		return byDefault, nil
	}
	longest := now.Add(c.MaxTTL())
	y, m, d := expiresOn.Date()
	end := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
	switch {
	case !end.After(now.Add(time.Hour)):
		return time.Time{}, Invalid("expires_on", "Choose a last day that is today or later: a credential must work for at least an hour.")
	case end.After(longest.Truncate(24 * time.Hour).Add(24 * time.Hour)):
		return time.Time{}, Invalid("expires_on", "%s allows credentials of at most %d days: choose %s or earlier.",
			c.Title(), int(c.MaxTTL()/(24*time.Hour)), longest.UTC().Format(DateFormat))
	case end.After(longest):
		return longest, nil
	}
	return end, nil
}

// DateFormat is how a day is written in forms and the API.
const DateFormat = time.DateOnly

// ParseDay reads a day written as YYYY-MM-DD for field; "" is the zero
// time. Returns an Error of KindInvalid for anything else.
func ParseDay(field, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	day, err := time.Parse(DateFormat, s)
	if err != nil {
		return time.Time{}, Invalid(field, "Write the day as YYYY-MM-DD, for example 2027-03-31.")
	}
	return day, nil
}

// Summary says in one sentence, for the request form, what happens to a
// request for c.
func (p *Policy) Summary() string {
	var at []string
	if len(p.AutoApproveEmailDomains) > 0 {
		ds := make([]string, len(p.AutoApproveEmailDomains))
		for i, d := range p.AutoApproveEmailDomains {
			ds[i] = "@" + d
		}
		at = append(at, "verified "+orList(ds)+" addresses")
	}
	if len(p.AutoApproveGroups) > 0 {
		at = append(at, "members of "+orList(p.AutoApproveGroups))
	}
	review := "A 2i2c staff member reviews each request."
	if p.Required() >= 2 {
		review = "Needs the approval of two 2i2c staff members."
	}
	if len(at) == 0 {
		return review
	}
	others := "Other requests are reviewed by a 2i2c staff member."
	if p.Required() >= 2 {
		others = "Other requests need the approval of two 2i2c staff members."
	}
	return fmt.Sprintf("Approved at once for %s. %s", strings.Join(at, " and for "), others)
}

func orList(items []string) string {
	switch len(items) {
	case 1:
		return items[0]
	case 2:
		return items[0] + " or " + items[1]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
