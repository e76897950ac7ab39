package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// publication is a cluster's active credentials at one moment, in one
// format. Its ETag comes from the credentials themselves, expiries included
// (the web config publishes them), so an unchanged set is answered 304
// without rendering and checking the document, which for a thousand users
// is most of the work.
type publication struct {
	users      webconfig.Users
	expires    webconfig.Expiries
	format     string
	etag       string
	nextExpiry time.Time // zero when no credential will expire
}

// publicationOf reads cluster cl's active credentials for format ("" or
// "yaml" for the web config, "htpasswd").
func (s *Server) publicationOf(c echo.Context, cl *portal.Cluster, format string) (*publication, error) {
	switch format {
	case "", "yaml":
		format = "yaml"
	case "htpasswd":
	default:
		return nil, portal.Invalid("format", "format is htpasswd, or absent for the Prometheus web config")
	}
	creds, err := s.wf.ActiveCredentials(c.Request().Context(), cl)
	if err != nil {
		return nil, err
	}
	p := &publication{users: make(webconfig.Users, len(creds)), expires: make(webconfig.Expiries, len(creds)), format: format}
	h := sha256.New()
	io.WriteString(h, format+"\n")
	for _, cr := range creds { // ordered by username
		p.users[cr.Username] = cr.PasswordHash
		p.expires[cr.Username] = cr.ExpiresAt
		io.WriteString(h, cr.Username+":"+cr.PasswordHash+":"+cr.ExpiresAt.UTC().Format(time.RFC3339Nano)+"\n")
		if p.nextExpiry.IsZero() || cr.ExpiresAt.Before(p.nextExpiry) {
			p.nextExpiry = cr.ExpiresAt
		}
	}
	p.etag = `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
	return p, nil
}

// render writes the document. What is served is checked first: the web
// config reads back strictly as exporter-toolkit reads it, with each user's
// expiry as a comment the agent enforces on its own; every hash is a
// complete bcrypt hash. htpasswd has no place for the expiry.
func (p *publication) render() (body []byte, contentType string, err error) {
	if p.format == "htpasswd" {
		body, err = webconfig.MarshalHtpasswd(p.users)
		return body, "text/plain; charset=utf-8", err
	}
	body, err = webconfig.MarshalUsers(p.users, p.expires)
	return body, "application/yaml", err
}

// webConfig serves a cluster's active credentials to its agent, behind the
// cluster's sync token. With If-None-Match and ?wait=, it long-polls: it
// answers as soon as the set changes, on any replica (PostgreSQL NOTIFY), or
// when a credential expires, and with 304 when the wait ends unchanged.
func (s *Server) webConfig(c echo.Context) error {
	token, _ := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	token = strings.TrimSpace(token)
	// The token is checked again at every wake-up of a long-poll: one
	// rotated out while the request waited opens nothing more.
	authorize := func() (*portal.Cluster, error) {
		return s.wf.ClusterForSyncToken(c.Request().Context(), c.Param("name"), token)
	}
	unauthorized := func() error {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="portal"`)
		return c.NoContent(http.StatusUnauthorized)
	}
	cl, err := authorize()
	if errors.Is(err, portal.ErrUnauthorized) {
		return unauthorized()
	}
	if err != nil {
		return err
	}
	// The agent is in step when it is answered (200, or 304 at the end of a
	// wait), not when it asks: portal_agent_last_sync_timestamp_seconds.
	defer func() {
		if r := c.Response(); r.Committed && (r.Status == http.StatusOK || r.Status == http.StatusNotModified) {
			s.metrics.agents.seen(cl.Name, time.Now())
		}
	}()
	var wait time.Duration
	if w := c.QueryParam("wait"); w != "" {
		if wait, err = time.ParseDuration(w); err != nil || wait < 0 {
			return portal.Invalid("wait", "wait is a duration such as 30s, at most %s", webconfig.MaxWait)
		}
		wait = min(wait, webconfig.MaxWait)
	}
	format := c.QueryParam("format")
	ifNoneMatch := c.Request().Header.Get("If-None-Match")

	// Subscribe before the first look, so that a change between the look
	// and the wait is not missed.
	changed, unsubscribe := s.notify.Subscribe(cl.ID)
	defer unsubscribe()
	deadline := time.Now().Add(wait)
	for first := true; ; first = false {
		if !first {
			if cl, err = authorize(); errors.Is(err, portal.ErrUnauthorized) {
				return unauthorized()
			} else if err != nil {
				return err
			}
		}
		p, err := s.publicationOf(c, cl, format)
		if err != nil {
			return err
		}
		h := c.Response().Header()
		h.Set("ETag", p.etag)
		h.Set("Cache-Control", "no-store")
		if ifNoneMatch != p.etag {
			body, contentType, err := p.render()
			if err != nil {
				return fmt.Errorf("publish %s: %w", cl.Name, err)
			}
			return c.Blob(http.StatusOK, contentType, body)
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return c.NoContent(http.StatusNotModified)
		}
		// Expiry is decided by the query, not by a job: wake up when the next
		// credential expires, too.
		if !p.nextExpiry.IsZero() {
			remaining = min(remaining, time.Until(p.nextExpiry)+10*time.Millisecond)
		}
		timer := time.NewTimer(max(remaining, 0))
		select {
		case <-changed:
		case <-timer.C:
		case <-s.draining:
			timer.Stop()
			return c.NoContent(http.StatusNotModified)
		case <-c.Request().Context().Done():
			timer.Stop()
			return nil
		}
		timer.Stop()
	}
}
