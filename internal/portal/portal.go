// Package portal is the portal's vocabulary: the domain types every other
// package speaks (users, clusters, requests, credentials, audit events), the
// one error type and its kinds, the rules for typed text, cluster fields and
// the audit chain's hash. It imports nothing but the standard library, so any
// package may depend on it and it depends on none of theirs.
package portal
