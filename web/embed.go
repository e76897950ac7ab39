// Package web holds the portal's HTML templates and static files, embedded
// in the binary.
package web

import "embed"

// FS holds templates/ (html/template files) and static/ (served as is).
//
//go:embed templates static
var FS embed.FS
