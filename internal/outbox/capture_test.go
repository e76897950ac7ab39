package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

func TestCapture(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		max  int
		sent int
		want []int64 // the IDs kept, newest first
	}{
		{name: "fewer than max", max: 5, sent: 2, want: []int64{2, 1}},
		{name: "the newest max", max: 2, sent: 4, want: []int64{4, 3}},
		{name: "at least one", max: 0, sent: 3, want: []int64{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewCapture(tt.max)
			before := time.Now()
			for i := 1; i <= tt.sent; i++ {
				m := &portal.Message{ID: int64(i), Channel: portal.ChannelEmail, Recipient: "ada@example.org", Subject: "Hello"}
				if err := c.Send(context.Background(), m); err != nil {
					t.Fatal(err)
				}
				m.Subject = "changed after sending"
			}
			got := c.Messages()
			if len(got) != len(tt.want) {
				t.Fatalf("kept %d messages; want %d", len(got), len(tt.want))
			}
			for i, m := range got {
				if m.ID != tt.want[i] {
					t.Errorf("message %d is #%d; want #%d", i, m.ID, tt.want[i])
				}
				if m.Subject != "Hello" {
					t.Errorf("message #%d has subject %q; want the one it was sent with", m.ID, m.Subject)
				}
				if m.SentAt == nil || m.SentAt.Before(before) || m.Status != portal.MessageSent {
					t.Errorf("message #%d: sent at %v, %s; want sent now", m.ID, m.SentAt, m.Status)
				}
			}
			got[0].Subject = "changed by a reader"
			if again := c.Messages(); again[0].Subject != "Hello" {
				t.Errorf("a reader's change reached the capture: %q", again[0].Subject)
			}
		})
	}
}
