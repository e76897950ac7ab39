package server

import (
	"maps"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

func TestSessionCodecKeepsWhatSessionsHold(t *testing.T) {
	t.Parallel()
	deadline := time.Now().Add(time.Hour).Round(0)
	values := map[string]any{sessUserID: int64(1)<<53 + 1, sessCSRF: "tok", sessSeen: time.Now().UnixMilli(),
		sessAttempt + "state": "nonce verifier /dashboard", sessFlash: "Done <b>", "empty": ""}
	b, err := sessionCodec{}.Encode(deadline, values)
	if err != nil {
		t.Fatal(err)
	}
	gotDeadline, got, err := sessionCodec{}.Decode(b)
	if err != nil || !gotDeadline.Equal(deadline) || !maps.Equal(got, values) {
		t.Errorf("decoded %v %v (%v), want %v %v", gotDeadline, got, err, deadline, values)
	}

	// A session written before, by scs's gob codec, still opens.
	old, err := scs.GobCodec{}.Encode(deadline, values)
	if err != nil {
		t.Fatal(err)
	}
	if gotDeadline, got, err := (sessionCodec{}).Decode(old); err != nil || !gotDeadline.Equal(deadline) || !maps.Equal(got, values) {
		t.Errorf("gob data decoded as %v %v (%v), want %v %v", gotDeadline, got, err, deadline, values)
	}

	if _, err := (sessionCodec{}).Encode(deadline, map[string]any{"n": 1}); err == nil {
		t.Error("an int (not int64) was encoded: it would come back as another type")
	}
	if _, _, err := (sessionCodec{}).Decode([]byte(`{"deadline": 5}`)); err == nil {
		t.Error("malformed JSON decoded")
	}
}
