package portal

import (
	"errors"
	"strings"
	"testing"
)

func TestValidClusterName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want bool
	}{
		{"awi-ciroh", true},
		{"openscapes", true},
		{"a", true},
		{"2i2c", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-leading", false},
		{"trailing-", false},
		{"Upper", false},
		{"under_score", false},
		{"dot.ted", false},
		{"sp ace", false},
		{"awi-ciroh\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ValidClusterName(tt.name); got != tt.want {
				t.Errorf("ValidClusterName(%q) = %v, want %v", tt.name, got, tt.want)
			}
			c := &Cluster{Name: tt.name, PrometheusURL: "https://prometheus.example.org", CredentialTTLDays: DefaultCredentialTTLDays}
			err := c.Validate()
			if tt.want != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("Validate of a cluster named %q: %v, want it to agree with ValidClusterName", tt.name, err)
			}
		})
	}
}
