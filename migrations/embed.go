// Package migrations holds the portal's database schema as numbered SQL files,
// embedded in the binary and applied in order by goose.
package migrations

import "embed"

// FS holds every migration file; goose reads it at the root.
//
//go:embed *.sql
var FS embed.FS
