package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// Handlers come in three kinds, each with an adaptor that does what they
// all do: a page (GET, rendered), a form that changes something (POST,
// redirect, GET), and a call of the JSON API. A handler of any kind gets a
// call, does one thing through the workflow, and says what to show.

// call is one request to a handler: who makes it, and the object the path's
// :id names (0 on a route without one).
type call struct {
	c     echo.Context
	ctx   context.Context
	actor workflow.Actor
	id    int64
}

// newCall reads the request's actor and, when the route has one, its :id:
// a path that names no number names nothing (404).
func (s *Server) newCall(c echo.Context) (call, error) {
	cl := call{c: c, ctx: c.Request().Context(), actor: s.actor(c)}
	if slices.Contains(c.ParamNames(), "id") {
		id, err := idParam(c, "id")
		if err != nil {
			return call{}, err
		}
		cl.id = id
	}
	return cl, nil
}

// pageHandler adapts show, a page, to echo: what show returns is rendered
// with the template called name. show's error goes to the error handler.
func pageHandler(s *Server, name string, show func(call) (page, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl, err := s.newCall(c)
		if err != nil {
			return err
		}
		p, err := show(cl)
		if err != nil {
			return err
		}
		return s.render(c, http.StatusOK, name, p)
	}
}

// done is how a form's action ended: the page to show next and the message
// it carries, of a kind (success, info).
type done struct {
	kind, message, to string
}

// formHandler adapts act, a form that changes something, to echo: the form
// posts, the browser is redirected to done.to, and that page shows the
// message (post, redirect, get; a reload repeats nothing). A refusal the
// person can act on (a field to fix, a state that changed meanwhile) takes
// them back to back(id) with its reason; with back nil, or for any other
// error, the error handler answers.
func formHandler(s *Server, back func(id int64) string, act func(call) (done, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl, err := s.newCall(c)
		if err != nil {
			return err
		}
		d, err := act(cl)
		if pe, _, ok := fixable(err); ok && back != nil {
			d = done{kind: "error", message: pe.Message, to: back(cl.id)}
		} else if err != nil {
			return err
		}
		s.setFlash(c, d.kind, d.message)
		return c.Redirect(http.StatusSeeOther, d.to)
	}
}

// apiCall is one call of the JSON API, with its body decoded into In.
type apiCall[In any] struct {
	call
	in In
}

// apiHandler adapts fn, one call of the API, to echo: it reads the path's
// :id and the JSON body (refusing unknown fields), calls fn, and answers
// what fn returns as JSON with status. fn's error goes to the error handler.
func apiHandler[In any](s *Server, status int, fn func(apiCall[In]) (any, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl, err := s.newCall(c)
		if err != nil {
			return err
		}
		ac := apiCall[In]{call: cl}
		if err := bindJSON(c, &ac.in); err != nil {
			return err
		}
		out, err := fn(ac)
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

// created marks the answer to a call that made an object: 201's Location
// names it.
func created(c echo.Context, location string) {
	c.Response().Header().Set(echo.HeaderLocation, location)
}

// Where forms come back to.

func requestURL(id int64) string    { return fmt.Sprintf("/requests/%d", id) }
func credentialURL(id int64) string { return fmt.Sprintf("/credentials/%d", id) }
func queueURL(int64) string         { return "/staff/requests" }

// A refused revocation or report goes back to its confirmation, where the
// reason is typed.

func revokeURL(id int64) string { return credentialURL(id) + "/revoke" }
func reportURL(id int64) string { return credentialURL(id) + "/report-compromised" }
