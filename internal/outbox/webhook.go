package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/2i2c-org/credential-portal/internal/loopback"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

const (
	webhookURLForm = "want the https:// URL of a Slack-compatible incoming webhook"
	// webhookTimeout bounds a request by the default client.
	webhookTimeout = 15 * time.Second
	// maxAnswer is how much of a refusal's body an error quotes: Slack says
	// why in a word or two ("invalid_token", "channel_is_archived").
	maxAnswer = 200
)

// Webhook posts messages to a Slack-compatible incoming webhook: staff's
// channel. Its URL is a secret (Slack's embed a token), so it appears in no
// error. It is safe for concurrent use.
type Webhook struct {
	url    string
	client *http.Client
	// secrets are the parts of the URL no error may quote: all of it, its
	// path and its query.
	secrets []string
}

// NewWebhook returns a Webhook posting to rawURL through client (nil for a
// client with a 15-second timeout that follows no redirect). rawURL must be https://, or http:// to
// a loopback host. The errors say what to fix, and never quote the URL.
func NewWebhook(rawURL string, client *http.Client) (*Webhook, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, errors.New("outbox: the webhook URL is not set: " + webhookURLForm)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("outbox: the webhook URL is not a valid URL: " + webhookURLForm)
	}
	switch {
	case u.Host == "" || u.Opaque != "":
		return nil, errors.New("outbox: the webhook URL names no host: " + webhookURLForm)
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback.Host(u.Hostname()):
	case u.Scheme == "http":
		return nil, errors.New("outbox: the webhook URL is http:// to another machine, which would send its token and the messages in the clear: " + webhookURLForm)
	default:
		return nil, errors.New("outbox: the webhook URL's scheme is neither https nor http: " + webhookURLForm)
	}
	if client == nil {
		client = &http.Client{
			Timeout: webhookTimeout,
			// A webhook has no reason to redirect, and following one would
			// post the message elsewhere; its 3xx is reported instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	wh := &Webhook{url: u.String(), client: client}
	for _, s := range []string{wh.url, u.EscapedPath(), u.Path, u.RawQuery} {
		if len(s) > 1 { // not "/" alone
			wh.secrets = append(wh.secrets, s)
		}
	}
	return wh, nil
}

// Send posts m's text as {"text": …}; Slack reads links in it written as
// <url|label>. An answer other than 2xx is an error naming its status and
// the start of its body. No error names the URL.
func (wh *Webhook) Send(ctx context.Context, m *portal.Message) error {
	body, err := json.Marshal(struct {
		Text string `json:"text"`
	}{m.Text})
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.url, bytes.NewReader(body))
	if err != nil {
		return wh.scrub(fmt.Errorf("webhook: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := wh.client.Do(req)
	if err != nil {
		// *url.Error prints the URL; keep only what went wrong.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return wh.scrub(fmt.Errorf("webhook: %w", err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	// Drained, the connection serves the next message.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	text := strings.TrimSpace(strings.ToValidUTF8(string(answer), ""))
	if len(answer) > maxAnswer {
		text = truncate(text, maxAnswer)
	}
	if text == "" {
		return wh.scrub(fmt.Errorf("webhook answered %s", resp.Status))
	}
	return wh.scrub(fmt.Errorf("webhook answered %s: %s", resp.Status, text))
}

// scrub replaces err by its text with the URL, its path and its query
// blotted out, should they appear in it after all (a redirect's error, a
// server quoting the request). The chain is dropped with it: a wrapped error
// would still hold them.
func (wh *Webhook) scrub(err error) error {
	text := err.Error()
	for _, s := range wh.secrets {
		text = strings.ReplaceAll(text, s, "[webhook URL]")
	}
	if text == err.Error() {
		return err
	}
	return errors.New(text)
}
