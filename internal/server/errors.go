package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/issue"
)

// errorPage is the Data of the error template.
type errorPage struct {
	Title, Message    string
	Action, ActionURL string
}

// apiError is the body of every error the JSON API returns.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// handleError is the one place an error becomes a response: domain errors map
// to their status, echo's own errors keep theirs, and anything else is a 500
// with a log line and the request ID, and no detail for the client.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg, field := http.StatusInternalServerError, "Something went wrong on our side. It has been logged; please try again later.", ""
	var he *echo.HTTPError
	var inv *issue.InvalidError
	switch {
	case errors.As(err, &inv):
		status, msg, field = http.StatusUnprocessableEntity, inv.Message, inv.Field
	case errors.Is(err, issue.ErrNotFound):
		status, msg = http.StatusNotFound, "There is nothing at this address, or it is not yours to see."
	case errors.Is(err, issue.ErrForbidden):
		status, msg = http.StatusForbidden, "You are signed in, but this page is for 2i2c staff only."
	case errors.Is(err, issue.ErrConflict):
		status, msg = http.StatusConflict, "That clashes with what is already there. Reload the page and try again."
	case errors.Is(err, issue.ErrInvalid):
		status, msg = http.StatusUnprocessableEntity, "The input is not valid."
	case errors.As(err, &he):
		status = he.Code
		msg = http.StatusText(status)
		if m, ok := he.Message.(string); ok && status < 500 {
			msg = m
		}
	}
	if status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed", "error", err.Error(),
			"method", c.Request().Method, "path", c.Request().URL.Path)
	}

	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else if isAPI(c) {
		err = c.JSON(status, apiError{Error: msg, Field: field})
	} else {
		err = s.render(c, status, "error", page{Title: http.StatusText(status), Data: errorPage{
			Title: http.StatusText(status), Message: msg,
		}})
	}
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "writing error response", "error", err.Error())
		_ = c.String(http.StatusInternalServerError, "internal error")
	}
}

func isAPI(c echo.Context) bool {
	p := c.Request().URL.Path
	return len(p) >= 5 && p[:5] == "/api/"
}
