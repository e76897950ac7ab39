package loadseed

import "testing"

// BenchmarkEventSource measures the Go side of seeding: making, canonicalising and chaining events.
func BenchmarkEventSource(b *testing.B) {
	users := []User{{ID: 1, Email: "staff@2i2c.org", Staff: true}, {ID: 2, Email: "a@example.org"}, {ID: 3, Email: "b@example.org"}}
	clusters := []Cluster{{ID: 1, Name: "hub-01"}}
	src := NewEventSource(b.N, users, clusters)
	b.ResetTimer()
	for src.Next() {
	}
	if err := src.Err(); err != nil {
		b.Fatal(err)
	}
}
