package server

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/alexedwards/scs/v2"
)

// sessionCodec writes a session's data as JSON: its deadline, and its
// values by type, which are strings and int64s only (the keys in
// sessions.go). Every request decodes its session, and scs's GobCodec
// compiles gob's type information anew at each decode, a few times the cost
// of reading this JSON. Data written by GobCodec before (a gob stream never
// starts with '{') is still read, so no one is signed out by the change; it
// is written as JSON at the session's next write.
type sessionCodec struct{}

type sessionJSON struct {
	Deadline time.Time         `json:"deadline"`
	Strings  map[string]string `json:"strings,omitempty"`
	Ints     map[string]int64  `json:"ints,omitempty"`
}

// Encode refuses a value of any other type than string and int64: a session
// key of a new type needs a place here first.
func (sessionCodec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	aux := sessionJSON{Deadline: deadline}
	for k, v := range values {
		switch v := v.(type) {
		case string:
			if aux.Strings == nil {
				aux.Strings = map[string]string{}
			}
			aux.Strings[k] = v
		case int64:
			if aux.Ints == nil {
				aux.Ints = map[string]int64{}
			}
			aux.Ints[k] = v
		default:
			return nil, fmt.Errorf("session: value of %q is a %T, which sessionCodec does not keep", k, v)
		}
	}
	return json.Marshal(aux)
}

func (sessionCodec) Decode(b []byte) (time.Time, map[string]any, error) {
	if len(b) == 0 || b[0] != '{' {
		return scs.GobCodec{}.Decode(b)
	}
	var aux sessionJSON
	if err := json.Unmarshal(b, &aux); err != nil {
		return time.Time{}, nil, fmt.Errorf("session: %w", err)
	}
	values := make(map[string]any, len(aux.Strings)+len(aux.Ints))
	for k, v := range aux.Strings {
		values[k] = v
	}
	for k, v := range aux.Ints {
		values[k] = v
	}
	return aux.Deadline, values, nil
}
