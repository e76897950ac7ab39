package server

import "github.com/labstack/echo/v4"

// auditRoutes registers the audit review: the staff page and its exports,
// and the JSON API.
func (s *Server) auditRoutes(staff, api *echo.Group) {}
