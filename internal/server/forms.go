package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// formPost is one form's post about the object the path's :id names.
type formPost struct {
	c     echo.Context
	ctx   context.Context
	actor workflow.Actor
	id    int64
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
func formHandler(s *Server, back func(id int64) string, act func(formPost) (done, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := idParam(c, "id")
		if err != nil {
			return err
		}
		d, err := act(formPost{c: c, ctx: c.Request().Context(), actor: s.actor(c), id: id})
		if pe, _, ok := fixable(err); ok && back != nil {
			d = done{kind: "error", message: pe.Message, to: back(id)}
		} else if err != nil {
			return err
		}
		s.setFlash(c, d.kind, d.message)
		return c.Redirect(http.StatusSeeOther, d.to)
	}
}

// Where forms come back to.

func requestURL(id int64) string    { return fmt.Sprintf("/requests/%d", id) }
func credentialURL(id int64) string { return fmt.Sprintf("/credentials/%d", id) }
func queueURL(int64) string         { return "/staff/requests" }
