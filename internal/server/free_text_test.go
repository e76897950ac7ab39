package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// pkcs8Ed25519 is a new Ed25519 private key as the base64 body of its PKCS #8
// PEM block (64 characters), in standard and in URL-safe base64: what
// someone copies from between "-----BEGIN PRIVATE KEY-----" and its end.
func pkcs8Ed25519(t *testing.T) (std, urlSafe string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der), base64.RawURLEncoding.EncodeToString(der)
}

// jsonBody is v as a JSON request body.
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPrivateKeyInARevokeReasonIsRefusedNotStoredNotEchoed: a customer
// pastes a private key into the revoke reason, on the page and through the
// API. The revocation is refused with the warning, the credential stays as
// it was, and the key is in no page, no table, no log line.
func TestPrivateKeyInARevokeReasonIsRefusedNotStoredNotEchoed(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	std, urlSafe := pkcs8Ed25519(t)
	// The reason is typed on the revocation's confirmation, which a refusal
	// comes back to.
	page, action := fmt.Sprintf("/credentials/%d/revoke", cred.ID), fmt.Sprintf("/credentials/%d/revoke", cred.ID)

	for _, key := range []string{std, urlSafe, newKey(t).String()} {
		r := alice.submit(page, action, url.Values{"reason": {"project ended; our key was " + key}})
		if r.Request.URL.Path != page || !strings.Contains(r.Body, "PRIVATE key") || !strings.Contains(r.Body, "not stored") {
			t.Errorf("revoke form with a private key: at %s, want %s with the warning\n%s", r.Request.URL.Path, page, r.Body)
		}
		if strings.Contains(r.Body, key) || strings.Contains(r.Body, key[:20]) {
			t.Error("the page shows the private key back")
		}
		api := alice.apiPost("/api/v1"+action, jsonBody(t, map[string]string{"reason": key}))
		var body apiError
		_ = json.Unmarshal([]byte(api.Body), &body)
		if api.StatusCode != http.StatusUnprocessableEntity || body.Field != "reason" || !strings.Contains(body.Error, "PRIVATE key") {
			t.Errorf("API revoke with a private key: %d %s; want 422 on reason", api.StatusCode, api.Body)
		}
		if strings.Contains(api.Body, key[:20]) {
			t.Error("the API answer shows the private key back")
		}
		p.assertSecretNowhere(t, key[:40])
	}
	if n := p.count(`SELECT count(*) FROM credentials WHERE id = $1 AND revoked_at IS NULL`, cred.ID); n != 1 {
		t.Error("a refused revocation revoked the credential")
	}
	p.wantAudited("credential.revoked", 0)
}

// TestPasswordInACompromiseReportIsRefusedNotStored: the compromise form
// warns not to paste the password; a customer who pastes it anyway is
// refused with a message that does not repeat it, and the password is
// stored nowhere. Reported again without it, the credential is revoked.
func TestPasswordInACompromiseReportRevokesAndKeepsNoneOfIt(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	page, action := fmt.Sprintf("/credentials/%d", cred.ID), fmt.Sprintf("/credentials/%d/report-compromised", cred.ID)

	if form := alice.get(action); !strings.Contains(form.Body, "Do not paste the password") {
		t.Errorf("the compromise form does not warn against pasting the password:\n%s", form.Body)
	}
	// The leak is real: the credential is revoked at once all the same, and
	// the text that held the password is kept nowhere.
	r := alice.submit(page, action, url.Values{"details": {"I pasted " + cred.Password + " into a public chat"}})
	if r.Request.URL.Path != page || !strings.Contains(r.Body, "is revoked and 2i2c staff are told") ||
		!strings.Contains(r.Body, "held a password or a private key, so it was not kept") || strings.Contains(r.Body, cred.Password) {
		t.Errorf("compromise report with the password: at %s\n%s", r.Request.URL.Path, r.Body)
	}
	if n := p.count(`SELECT count(*) FROM credentials WHERE id = $1 AND revoked_at IS NOT NULL AND compromised`, cred.ID); n != 1 {
		t.Fatal("a compromise report holding the password left the credential active")
	}
	p.assertSecretNowhere(t, cred.Password)

	// By the API, for a second credential: the same, and it says so.
	other := p.issue(alice, sam, "awi-ciroh")
	api := alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/report-compromised", other.ID),
		jsonBody(t, map[string]string{"details": "password: " + other.Password}))
	if api.StatusCode != http.StatusOK || !strings.Contains(api.Body, `"details_withheld":true`) || strings.Contains(api.Body, other.Password) {
		t.Errorf("API compromise report with the password: %d %s", api.StatusCode, api.Body)
	}
	p.assertSecretNowhere(t, other.Password)
}

// TestPrivateKeyInAJustificationIsNotEchoed: a key body pasted into the
// justification is refused; the form comes back with the warning, the
// justification cleared and the public key kept, and nothing is stored.
func TestPrivateKeyInAJustificationIsNotEchoed(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	public := newKey(t).Recipient().String()
	std, _ := pkcs8Ed25519(t)
	r := alice.submit("/requests/new", "/requests", url.Values{"cluster": {"awi-ciroh"}, "public_key": {public},
		"justification": {"Grafana dashboards. Our service key:\n" + std}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "PRIVATE key") ||
		!strings.Contains(r.Body, "The field has been cleared") {
		t.Errorf("justification with a private key: %d\n%s", r.StatusCode, r.Body)
	}
	if strings.Contains(r.Body, std[:20]) || strings.Contains(r.Body, "Grafana dashboards. Our service key") {
		t.Error("the form shows the justification with the key back")
	}
	if !strings.Contains(r.Body, public) {
		t.Error("the form lost the public key typed")
	}
	if n := p.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("%d requests stored", n)
	}
	p.assertSecretNowhere(t, std[:40])
}

// TestSecretsInStaffTextAreRefused: staff are held to the same rule: a
// private key in a denial note or a cluster's note is refused, not stored,
// and the cluster form does not show it back.
func TestSecretsInStaffTextAreRefused(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	reqID := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	secret := newKey(t).String()

	q := sam.get("/staff/requests")
	r := sam.post(fmt.Sprintf("/staff/requests/%d/deny", reqID), url.Values{"csrf": {csrfToken(t, q.Body)}, "note": {"not with " + secret}})
	if !strings.Contains(r.Body, "PRIVATE key") || strings.Contains(r.Body, secret) {
		t.Errorf("denial note with a private key:\n%s", r.Body)
	}
	if n := p.count(`SELECT count(*) FROM requests WHERE id = $1 AND status = 'pending'`, reqID); n != 1 {
		t.Error("a refused denial decided the request")
	}

	r = sam.submit("/staff/clusters/new", "/staff/clusters", url.Values{"name": {"leap"}, "display_name": {"LEAP"},
		"prometheus_url": {"https://prometheus.leap.2i2c.cloud"}, "credential_ttl_days": {"90"}, "enabled": {"on"},
		"note": {"ops key: " + secret}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "PRIVATE key") || strings.Contains(r.Body, secret) {
		t.Errorf("cluster note with a private key: %d\n%s", r.StatusCode, r.Body)
	}
	if !strings.Contains(r.Body, "https://prometheus.leap.2i2c.cloud") {
		t.Error("the cluster form lost the fields that held no secret")
	}
	p.assertSecretNowhere(t, secret)
}

// TestBidiControlsAreRefusedInFreeText: a reason that would show in another
// order than it is stored (a right-to-left override) is refused with a
// message naming the character, and nothing changes.
func TestBidiControlsAreRefusedInFreeText(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	r := alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/revoke", cred.ID), jsonBody(t, map[string]string{"reason": "project ended \u202Edetnarg"}))
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "U+202E") || !strings.Contains(r.Body, `"field":"reason"`) {
		t.Errorf("revoke with a right-to-left override: %d %s", r.StatusCode, r.Body)
	}
	if n := p.count(`SELECT count(*) FROM credentials WHERE id = $1 AND revoked_at IS NULL`, cred.ID); n != 1 {
		t.Error("the refused revocation revoked the credential")
	}
}
