package server

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// devMailCSP is the policy of a captured message's HTML part: its own
// inline styles and data: images, nothing else. No script runs, nothing is
// fetched, no form posts, and the document cannot act as the portal's
// origin.
const devMailCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'; sandbox"

// devMailPage lists the messages development mode captured.
type devMailPage struct {
	Messages []*portal.Message
}

// devMessages are the captured messages, newest first.
func (s *Server) devMessages() []*portal.Message {
	ms := slices.Clone(s.cfg.DevMail.Messages())
	slices.SortStableFunc(ms, func(a, b *portal.Message) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	return ms
}

func (s *Server) devMail(call) (page, error) {
	return page{Title: "Development mail", Data: devMailPage{Messages: s.devMessages()}}, nil
}

// devMailHTML serves the HTML part of captured message :id as a document of
// its own, under devMailCSP: it is what a mail client would show, never
// part of a portal page.
func (s *Server) devMailHTML(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ms := s.devMessages()
	i := slices.IndexFunc(ms, func(m *portal.Message) bool { return m.ID == id && m.HTML != "" })
	if i < 0 {
		return portal.ErrNotFound
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", devMailCSP)
	h.Set("Cache-Control", "no-store")
	return c.HTMLBlob(http.StatusOK, []byte(ms[i].HTML))
}
