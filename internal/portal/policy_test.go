package portal

import (
	"testing"
	"time"
)

func TestPolicySummarySaysWhatHappens(t *testing.T) {
	tests := []struct {
		policy Policy
		want   string
	}{
		{Policy{}, "A 2i2c staff member reviews each request."},
		{Policy{ApprovalsRequired: 2}, "Needs the approval of two 2i2c staff members."},
		{Policy{AutoApproveEmailDomains: []string{"earthscope.org"}},
			"Approved at once for verified @earthscope.org addresses. Other requests are reviewed by a 2i2c staff member."},
		{Policy{AutoApproveEmailDomains: []string{"a.org", "b.org", "c.org"}, AutoApproveGroups: []string{"admins"}, ApprovalsRequired: 2},
			"Approved at once for verified @a.org, @b.org or @c.org addresses and for members of admins. Other requests need the approval of two 2i2c staff members."},
	}
	for _, tt := range tests {
		if got := tt.policy.Summary(); got != tt.want {
			t.Errorf("Summary of %+v:\n got %q\nwant %q", tt.policy, got, tt.want)
		}
	}
}

func TestAutoApprovesOnlyVerifiedAddressesOfTheDomainItself(t *testing.T) {
	p := Policy{AutoApproveEmailDomains: []string{"earthscope.org"}, AutoApproveGroups: []string{"earthscope-admins"}}
	tests := []struct {
		user *User
		want string // rule:matched, or "" for none
	}{
		{&User{Email: "ann@earthscope.org", EmailVerified: true}, "email_domain:earthscope.org"},
		{&User{Email: "Ann@EarthScope.ORG", EmailVerified: true}, "email_domain:earthscope.org"},
		{&User{Email: "ann@earthscope.org"}, ""},                           // not verified
		{&User{Email: "ann@mail.earthscope.org", EmailVerified: true}, ""}, // a subdomain
		{&User{Email: "ann@earthscope.org.evil.net", EmailVerified: true}, ""},
		{&User{Email: "earthscope.org@evil.net", EmailVerified: true}, ""},
		{&User{Email: "bo@x.net", Groups: []string{"earthscope-admins"}}, "group:earthscope-admins"},
		{&User{Email: "bo@x.net", Groups: []string{"Earthscope-Admins"}}, ""}, // groups compare exactly
		{nil, ""},
	}
	for _, tt := range tests {
		rule, matched, ok := p.AutoApproves(tt.user)
		got := ""
		if ok {
			got = rule + ":" + matched
		}
		if got != tt.want {
			t.Errorf("AutoApproves(%+v) = %q, want %q", tt.user, got, tt.want)
		}
	}
}

func TestExpiryIsTheEndOfTheChosenDayWithinTheLongestLifetime(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	c := &Cluster{Name: "x", CredentialTTLDays: 90, Policy: Policy{MaxTTLDays: 180}}
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name    string
		on      time.Time
		want    time.Time
		wantErr bool
	}{
		{"default", time.Time{}, now.Add(90 * 24 * time.Hour), false},
		{"the default's day keeps the default", day(2027, 3, 1), now.Add(90 * 24 * time.Hour), false},
		{"shorter", day(2026, 12, 31), day(2027, 1, 1), false},
		{"the longest day, cut at the longest lifetime", day(2027, 5, 30), now.Add(180 * 24 * time.Hour), false},
		{"a day beyond", day(2027, 5, 31), time.Time{}, true},
		{"today", day(2026, 12, 1), day(2026, 12, 2), false},
		{"yesterday", day(2026, 11, 30), time.Time{}, true},
		{"tomorrow", day(2026, 12, 2), day(2026, 12, 3), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Expiry(now, tt.on)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("Expiry(%s) = %s, %v; want %s (error %t)", tt.on.Format(DateFormat), got, err, tt.want, tt.wantErr)
			}
		})
	}
}
