package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// errorPage is the Data of the error template.
type errorPage struct {
	Title, Message    string
	Action, ActionURL string
}

// apiError is the body of every error the JSON API returns.
type apiError struct {
	Error             string `json:"error"`
	Field             string `json:"field,omitempty"`
	ExistingRequestID int64  `json:"existing_request_id,omitempty"`
}

// Messages for errors that carry none of their own.
const (
	msgInternal  = "Something went wrong on our side. It has been logged; please try again later."
	msgNotFound  = "There is nothing at this address, or it is not yours to see."
	msgForbidden = "You are signed in, but this page is for 2i2c staff only."
	msgConflict  = "That clashes with what is already there. Reload the page and try again."
)

// statusOf maps a domain sentinel to its HTTP status.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, issue.ErrNotFound):
		return http.StatusNotFound, msgNotFound
	case errors.Is(err, issue.ErrForbidden):
		return http.StatusForbidden, msgForbidden
	case errors.Is(err, issue.ErrConflict):
		return http.StatusConflict, msgConflict
	case errors.Is(err, issue.ErrInvalid):
		return http.StatusUnprocessableEntity, "The input is not valid."
	}
	return http.StatusInternalServerError, msgInternal
}

// handleError is the one place an error becomes a response: domain errors map
// to their status and message, echo's own errors keep theirs, and anything
// else is a 500 with a log line and the request ID, and no detail for the
// client. Refusals (403) are audited.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	body := apiError{Error: msgInternal}
	status := http.StatusInternalServerError
	var (
		inv  *issue.InvalidError
		dup  *workflow.DuplicateError
		prob *issue.Problem
		he   *echo.HTTPError
	)
	switch {
	case errors.As(err, &inv):
		status, body.Error, body.Field = http.StatusUnprocessableEntity, inv.Message, inv.Field
	case errors.As(err, &dup):
		status, body.Error, body.Field, body.ExistingRequestID = http.StatusConflict, dup.Error(), "cluster", dup.Existing.ID
	case errors.As(err, &prob):
		status, _ = statusOf(prob.Kind)
		body.Error = prob.Message
	case errors.As(err, &he):
		status = he.Code
		body.Error = http.StatusText(status)
		if m, ok := he.Message.(string); ok && status < 500 {
			body.Error = m
		}
	default:
		status, body.Error = statusOf(err)
	}
	ctx := c.Request().Context()
	if status >= 500 {
		s.log.ErrorContext(ctx, "request failed", "error", err.Error(),
			"method", c.Request().Method, "path", c.Request().URL.Path)
	}
	if status == http.StatusForbidden {
		s.auditRefusal(c, body.Error)
	}

	switch {
	case c.Request().Method == http.MethodHead:
		err = c.NoContent(status)
	case isAPI(c):
		err = c.JSON(status, body)
	default:
		title := http.StatusText(status)
		err = s.render(c, status, "error", page{Title: title, Data: errorPage{Title: title, Message: body.Error}})
	}
	if err != nil {
		s.log.ErrorContext(ctx, "writing error response", "error", err.Error())
		_ = c.String(http.StatusInternalServerError, "internal error")
	}
}

func isAPI(c echo.Context) bool {
	p := c.Request().URL.Path
	return len(p) >= 5 && p[:5] == "/api/"
}

// auditRefusal records a 403 in the audit log. Someone not signed in can
// cause as many as they like (a form post without its token), and the log
// keeps every row for good; so their refusals are audited up to a few per
// address and minute, and logged beyond.
func (s *Server) auditRefusal(c echo.Context, reason string) {
	ctx := c.Request().Context()
	a := s.actor(c)
	if a.User == nil {
		if ok, _ := s.refusals.Allow(a.IP); !ok {
			s.log.WarnContext(ctx, "refused; not audited, too many from this address", "ip", a.IP, "path", c.Request().URL.Path)
			return
		}
	}
	details := map[string]any{"method": c.Request().Method, "path": issue.Printable(c.Request().URL.Path, 200), "reason": reason}
	if err := s.wf.Record(ctx, a, issue.ActionAccessRefused, "", 0, details); err != nil {
		s.log.ErrorContext(ctx, "auditing a refusal", "error", err.Error())
	}
}
