package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// apiGuard protects the JSON API, which the browser session authenticates:
// a state-changing call must send application/json (a cross-site HTML form
// cannot) and no Origin but the portal's own. That is the API's CSRF defence.
func (s *Server) apiGuard(next echo.HandlerFunc) echo.HandlerFunc {
	origin := s.cfg.BaseURL.Scheme + "://" + s.cfg.BaseURL.Host
	return func(c echo.Context) error {
		switch c.Request().Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
		if err != nil || mt != echo.MIMEApplicationJSON {
			return echo.NewHTTPError(http.StatusUnsupportedMediaType, "Send the body as JSON with Content-Type: application/json.")
		}
		if o := c.Request().Header.Get(echo.HeaderOrigin); o != "" && o != origin {
			return echo.NewHTTPError(http.StatusForbidden, "Cross-origin requests are refused.")
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
		return portal.Invalid("", "The body is not the JSON this call takes: %s.", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// apiCall is one call of the JSON API: who makes it, the object the path's
// :id names (0 on a route without one), and the body, decoded into In.
type apiCall[In any] struct {
	c     echo.Context
	ctx   context.Context
	actor workflow.Actor
	id    int64
	in    In
}

// apiHandler adapts fn, one call of the API, to echo: it reads the path's
// :id and the JSON body (refusing unknown fields), calls fn, and answers
// what fn returns as JSON with status. fn's error goes to the error handler.
func apiHandler[In any](s *Server, status int, fn func(apiCall[In]) (any, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		call := apiCall[In]{c: c, ctx: c.Request().Context(), actor: s.actor(c)}
		if slices.Contains(c.ParamNames(), "id") {
			id, err := idParam(c, "id")
			if err != nil {
				return err
			}
			call.id = id
		}
		if err := bindJSON(c, &call.in); err != nil {
			return err
		}
		out, err := fn(call)
		if err != nil {
			return err
		}
		return c.JSON(status, out)
	}
}

// shown turns a workflow result into what the API shows of it, with view;
// for a call such as shown(requestJSON)(s.wf.Request(…)).
func shown[T, J any](view func(T) J) func(T, error) (any, error) {
	return func(v T, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		return view(v), nil
	}
}

// shownAll is shown for lists: the API shows them as {key: [...]}, never
// null.
func shownAll[T, J any](key string, view func(T) J) func([]T, error) (any, error) {
	return func(vs []T, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		out := make([]J, 0, len(vs))
		for _, v := range vs {
			out = append(out, view(v))
		}
		return map[string]any{key: out}, nil
	}
}

// created marks the answer to a call that made an object: 201's Location
// names it.
func created(c echo.Context, location string) {
	c.Response().Header().Set(echo.HeaderLocation, location)
}
