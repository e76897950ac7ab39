package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

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
// counts as {}. A body that is not UTF-8 is refused: encoding/json would
// replace each bad byte with U+FFFD, and store text other than was sent.
func bindJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body) // at most bodyLimit
	if err != nil {
		if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) { // sent without a Content-Length
			return err
		}
		return portal.Invalid("", "The body could not be read.")
	}
	if !utf8.Valid(body) {
		return portal.Invalid("", "The body is not UTF-8 text, which JSON must be. Send it again as UTF-8.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return portal.Invalid("", "The body is not the JSON this call takes: %s.", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}
