package server

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// apiGuard protects the JSON API, which the browser session authenticates:
// a state-changing call must send application/json, which an HTML form of
// another site cannot. With crossOrigin before it (no Origin but the
// portal's own, no Sec-Fetch-Site but same-origin), that is the API's CSRF
// defence. A DELETE has no body to type: no form can send one, and a page
// of another site can send one only after a CORS preflight the portal never
// answers.
func (s *Server) apiGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Request().Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodDelete:
			return next(c)
		}
		mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
		if err != nil || mt != echo.MIMEApplicationJSON {
			return echo.NewHTTPError(http.StatusUnsupportedMediaType, "Send the body as JSON with Content-Type: application/json.")
		}
		return next(c)
	}
}

// bindJSON decodes the body into v, refusing unknown fields so that a typo
// in a field name is an error rather than a silent default. An empty body
// counts as {}.
func bindJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) { // sent without a Content-Length
			return err
		}
		return portal.Invalid("", "The body is not the JSON this call takes: %s.", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}
