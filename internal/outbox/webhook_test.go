package outbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// hookPath is the path of the test webhooks: like Slack's, it holds the
// token that makes the URL a secret.
const hookPath = "/services/T000/B000/tok3n-secret"

// hookReceiver is a webhook that answers each post as answer says.
type hookReceiver struct {
	srv *httptest.Server
	// answer gives the status and body for the nth post (from 1) of text.
	answer func(n int, text string) (int, string)

	mu    sync.Mutex
	posts []string // the text of each post
	types []string // the Content-Type of each post
}

// newHookReceiver starts a webhook on the loopback, closed when the test
// ends.
func newHookReceiver(t testing.TB, answer func(n int, text string) (int, string)) *hookReceiver {
	t.Helper()
	h := &hookReceiver{answer: answer}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != hookPath {
			http.Error(w, "no_service", http.StatusNotFound)
			return
		}
		var body struct {
			Text string `json:"text"`
		}
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.posts = append(h.posts, body.Text)
		h.types = append(h.types, r.Header.Get("Content-Type"))
		n := len(h.posts)
		h.mu.Unlock()
		status, text := http.StatusOK, "ok"
		if h.answer != nil {
			status, text = h.answer(n, body.Text)
		}
		w.WriteHeader(status)
		io.WriteString(w, text) //nolint:errcheck
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) url() string { return h.srv.URL + hookPath }

func (h *hookReceiver) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.posts...)
}

func (h *hookReceiver) contentTypes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.types...)
}

// newWebhook returns a Webhook posting to h, failing the test if it cannot.
func newWebhook(t testing.TB, h *hookReceiver) *Webhook {
	t.Helper()
	wh, err := NewWebhook(h.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

// checkNoURL fails the test when text holds the webhook's URL or token.
func checkNoURL(t *testing.T, what, text string, h *hookReceiver) {
	t.Helper()
	if strings.Contains(text, "tok3n") || strings.Contains(text, h.url()) {
		t.Errorf("%s holds the webhook URL: %q", what, text)
	}
}

func TestWebhookSend(t *testing.T) {
	t.Parallel()
	msg := &portal.Message{ID: 1, Channel: portal.ChannelWebhook, Audience: portal.AudienceStaff,
		Text: "Ada asked for a credential on pangeo: <https://portal.example.org/requests/3|request #3>"}
	tests := []struct {
		name    string
		answer  func(int, string) (int, string)
		closed  bool     // the receiver is gone
		wantErr []string // parts of the error; nil for none
	}{
		{name: "accepted"},
		{name: "refused", answer: func(int, string) (int, string) { return 500, "internal_error" },
			wantErr: []string{"500", "internal_error"}},
		{name: "long refusal cut short", answer: func(int, string) (int, string) { return 400, strings.Repeat("x", 5000) },
			wantErr: []string{"400", "xxx…"}},
		{name: "redirected", answer: func(int, string) (int, string) { return http.StatusFound, "" },
			wantErr: []string{"302"}},
		{name: "unreachable", closed: true, wantErr: []string{"webhook"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHookReceiver(t, tt.answer)
			wh := newWebhook(t, h)
			if tt.closed {
				h.srv.Close()
			}
			err := wh.Send(context.Background(), msg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				if got := h.received(); len(got) != 1 || got[0] != msg.Text {
					t.Errorf("receiver got %q; want one post of %q", got, msg.Text)
				}
				if ct := h.contentTypes(); ct[0] != "application/json" {
					t.Errorf("Content-Type = %q; want application/json", ct[0])
				}
				return
			}
			if err == nil {
				t.Fatal("Send succeeded; want an error")
			}
			t.Log(err)
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes long; want the answer cut short", len(err.Error()))
			}
			checkNoURL(t, "error", err.Error(), h)
		})
	}
}

func TestNewWebhook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		url     string
		wantErr string // a part of the error; "" for none
	}{
		{name: "https", url: "https://hooks.slack.com/services/T000/B000/tok3n-secret"},
		{name: "http to the loopback", url: "http://127.0.0.1:8080/services/T000/B000/tok3n-secret"},
		{name: "http to another host", url: "http://hooks.example.org/services/T000/B000/tok3n-secret", wantErr: "in the clear"},
		{name: "other scheme", url: "ftp://hooks.example.org/services/T000/B000/tok3n-secret", wantErr: "https"},
		{name: "no host", url: "https:///services/T000/B000/tok3n-secret", wantErr: "no host"},
		{name: "not a URL", url: "https://hooks.slack.com/services/%zz/tok3n-secret", wantErr: "not a valid URL"},
		{name: "unset", url: "", wantErr: "not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewWebhook(tt.url, nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("NewWebhook: %v", err)
			case tt.wantErr == "":
				return
			case err == nil:
				t.Fatalf("NewWebhook(%q) succeeded; want an error about %q", tt.url, tt.wantErr)
			case !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "tok3n") {
				t.Errorf("error %q holds the webhook's token", err)
			}
		})
	}
}
