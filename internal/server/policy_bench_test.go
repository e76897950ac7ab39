package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// fromAddress sends every request as if through the ingress from addr: the
// portal trusts X-Forwarded-For from loopback proxies, and limits sign-ins
// per client address.
type fromAddress struct {
	addr string
	next http.RoundTripper
}

func (f fromAddress) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.addr)
	return f.next.RoundTrip(r)
}

// BenchmarkAutoApprovedRequest times what a customer whose verified domain a
// cluster's policy approves waits for: from sending the request over HTTP
// (POST /api/v1/requests) to holding credentials.txt.age (GET of its
// download), with the approval, the bcrypt hash, the age encryption and the
// messages in between, on a real server and PostgreSQL. Each customer sends
// a few requests, well within the per-person limit; the goal is at most
// 25 ms an iteration on a 2-core machine.
func BenchmarkAutoApprovedRequest(b *testing.B) {
	p := newPortal(b, portalOptions{})
	c := testCluster("earthscope")
	c.Policy = portal.Policy{AutoApproveEmailDomains: []string{"example.org"}, ApprovalsRequired: 1}
	if err := p.Store.CreateCluster(context.Background(), c); err != nil {
		b.Fatal(err)
	}
	key := newKey(b)
	body := fmt.Sprintf(`{"cluster": "earthscope", "public_key": %q, "justification": "Dashboards for the research team."}`,
		key.Recipient().String())
	const perCustomer = 10
	customers := make([]*browser, 0, b.N/perCustomer+1)
	for i := range cap(customers) {
		br := p.browser()
		br.client.Transport = fromAddress{addr: fmt.Sprintf("198.51.100.%d", i%250+1), next: http.DefaultTransport}
		br.signIn(fmt.Sprintf("customer%d@example.org", i))
		customers = append(customers, br)
	}

	var last []byte
	b.ResetTimer()
	for i := range b.N {
		br := customers[i/perCustomer]
		r := br.apiPost("/api/v1/requests", body)
		var made apiRequestJSON
		if err := json.Unmarshal([]byte(r.Body), &made); err != nil || r.StatusCode != http.StatusCreated || made.CredentialID == nil {
			b.Fatalf("request: %d %s", r.StatusCode, r.Body)
		}
		dl := br.get(fmt.Sprintf("/api/v1/credentials/%d/credentials.txt.age", *made.CredentialID))
		if dl.StatusCode != http.StatusOK {
			b.Fatalf("download: %d %s", dl.StatusCode, dl.Body)
		}
		last = []byte(dl.Body)
	}
	b.StopTimer()
	if file := decryptWith(b, last, key); !strings.Contains(file, "Password:") {
		b.Fatalf("credentials.txt:\n%s", file)
	}
}
