// Package loopback decides whether a host is this machine's own: the one rule
// behind everything the portal allows only locally (plain-http cookies, the
// development sign-in, `portal dev`'s listening address).
package loopback

import (
	"net/netip"
	"strings"
)

// Host reports whether host, a name or an IP address as it appears in a URL
// or a host:port (without brackets), is the loopback: "localhost", an
// address in 127.0.0.0/8, or ::1 (also as an IPv4-mapped address).
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}
