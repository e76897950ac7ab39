package server

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// tokenContextKey keeps, in the echo context, the personal access token a
// bearer request came with.
const tokenContextKey = "token"

// currentToken is the token the request acts with, or nil in a browser
// session.
func currentToken(c echo.Context) *portal.Token {
	t, _ := c.Get(tokenContextKey).(*portal.Token)
	return t
}

// sessionOnly marks an API route that no token opens as such: the workflow
// refuses it to a token with its own reason (a token cannot make tokens).
const sessionOnly portal.Scope = ""

// apiRoutes registers the JSON API's routes, each with the scope a token
// needs for it, so that no route is reachable by a token without one.
type apiRoutes struct {
	g      *echo.Group
	prefix string
	scopes map[string]portal.Scope // "METHOD /api/v1/path" → scope
}

func (r apiRoutes) add(method, path string, sc portal.Scope, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	r.scopes[method+" "+r.prefix+path] = sc
	r.g.Add(method, path, h, m...)
}

// bearerToken is the token an Authorization header carries, and whether
// there is one. A header of another scheme is refused: a script that sends
// basic auth or a bare token means a token and should hear how to send it.
func bearerToken(r *http.Request) (string, bool, error) {
	h := r.Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return "", false, nil
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false, portal.Errorf(portal.KindUnauthorized,
			"The API takes a personal access token as Authorization: Bearer %s…; make one on the Tokens page.", portal.TokenPrefix)
	}
	return strings.TrimSpace(tok), true, nil
}

// apiAuth authenticates the JSON API: a request with Authorization: Bearer
// is its token's owner, with no cookie, no session (none is read, none
// started) and no browser CSRF rules, since no browser attaches a bearer
// token by itself; every other request is a browser session's, with the
// cross-origin and JSON-only rules that stand in for CSRF tokens.
func (s *Server) apiAuth(next echo.HandlerFunc) echo.HandlerFunc {
	viaSession := s.openSessions(echo.WrapMiddleware(s.sessions.LoadAndSave)(s.loadUser(s.requireUser(s.crossOrigin(s.apiGuard(next))))))
	viaToken := s.requireScope(next)
	return func(c echo.Context) error {
		secret, ok, err := bearerToken(c.Request())
		if err == nil && !ok {
			return viaSession(c)
		}
		var (
			u *portal.User
			t *portal.Token
		)
		if err == nil {
			u, t, err = s.tokenUser(c.Request(), secret, portal.Printable(c.RealIP(), 64))
		}
		if err != nil {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="2i2c credential portal"`)
			return err
		}
		if ok, _ := s.tokenCalls.Allow("token:" + strconv.FormatInt(t.ID, 10)); !ok {
			return echo.NewHTTPError(http.StatusTooManyRequests, "This token has made many calls in a short time. Wait a minute and try again.")
		}
		c.Set(userContextKey, u)
		c.Set(tokenContextKey, t)
		return viaToken(c)
	}
}

// requireScope lets a token through to a route only with the route's
// scope, and a staff scope only while its owner is staff. A route with no
// scope in the table is refused to tokens; an unknown path goes on to its
// 404.
func (s *Server) requireScope(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t := currentToken(c)
		if t == nil {
			return next(c)
		}
		key := c.Request().Method + " " + c.Path()
		sc, ok := s.apiScopes[key]
		switch {
		case !ok && strings.HasSuffix(c.Path(), "/*"):
			return next(c)
		case !ok:
			return portal.Errorf(portal.KindForbidden, "Tokens do not open %s.", key)
		case sc == sessionOnly:
			return next(c)
		case sc.StaffOnly() && !currentUser(c).IsStaff() && slices.Contains(t.Scopes, sc):
			return portal.Errorf(portal.KindForbidden,
				"This token's %s scope works only while its owner is 2i2c staff, and its owner no longer is.", sc)
		case !t.Allows(currentUser(c), sc):
			return portal.Errorf(portal.KindForbidden,
				"This token lacks the %s scope, which %s needs. Make a token with it on the Tokens page.", sc, key)
		}
		return next(c)
	}
}

// tokenCallLimit is the budget of calls of one token, all routes together:
// a script polling for an approval every few seconds is well inside it, one
// looping without a pause is not.
func tokenCallLimit() *middleware.RateLimiterMemoryStore {
	return middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
		Rate: rate.Limit(10), Burst: 100, ExpiresIn: 10 * time.Minute,
	})
}

// tokenCreationLimit limits new tokens per person, the page and the API
// together: a person makes a few, a script stuck in a loop many.
func tokenCreationLimit() echo.MiddlewareFunc {
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		IdentifierExtractor: func(c echo.Context) (string, error) {
			if u := currentUser(c); u != nil {
				return "user:" + strconv.FormatInt(u.ID, 10), nil
			}
			return c.RealIP(), nil
		},
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Every(time.Minute), Burst: 10, ExpiresIn: 10 * time.Minute,
		}),
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			return echo.NewHTTPError(http.StatusTooManyRequests, "You have made many tokens in a short time. Wait a minute and try again.")
		},
	})
}

// apiTokenJSON is a token as the API shows it: never its value, which only
// the answer to its creation holds.
type apiTokenJSON struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	LastUsedIP string     `json:"last_used_ip"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

func tokenJSON(t *portal.Token) apiTokenJSON {
	scopes := make([]string, len(t.Scopes))
	for i, sc := range t.Scopes {
		scopes[i] = string(sc)
	}
	return apiTokenJSON{ID: t.ID, Name: t.Name, Scopes: scopes, State: string(t.State(time.Now())),
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, LastUsedIP: t.LastUsedIP, RevokedAt: t.RevokedAt}
}

// newTokenJSON is the body of a new token.
type newTokenJSON struct {
	Name          string   `json:"name"`
	Scopes        []string `json:"scopes"`
	ExpiresInDays int      `json:"expires_in_days"`
}

func (s *Server) apiCreateToken(call apiCall[newTokenJSON]) (any, error) {
	nt, err := s.wf.CreateToken(call.ctx, call.actor, workflow.TokenInput(call.in))
	if err != nil {
		return nil, err
	}
	created(call.c, fmt.Sprintf("/api/v1/tokens/%d", nt.ID))
	call.c.Response().Header().Set(echo.HeaderCacheControl, "no-store") // the answer holds the token
	return struct {
		apiTokenJSON
		Token string `json:"token"`
	}{tokenJSON(nt.Token), nt.Secret}, nil
}

// tokenOwner is whose tokens a call is about: ?user=ID (another person's,
// for staff), else the caller's own.
func tokenOwner(call call) (int64, error) {
	q := call.c.QueryParam("user")
	if q == "" {
		return call.actor.User.ID, nil
	}
	id, err := strconv.ParseInt(q, 10, 64)
	if err != nil || id <= 0 {
		return 0, portal.Invalid("user", "user is a person's numeric ID, as in the audit log.")
	}
	return id, nil
}

func (s *Server) apiTokens(call apiCall[struct{}]) (any, error) {
	id, err := tokenOwner(call.call)
	if err != nil {
		return nil, err
	}
	q, err := call.pageQuery("cursor")
	if err != nil {
		return nil, err
	}
	return pageJSON("tokens", tokenJSON)(s.wf.Tokens(call.ctx, call.actor, id, q))
}

// tokenUser is the workflow's TokenUser through the tokens this replica
// holds (authCache): for a read (GET, HEAD), a token checked less than a
// minute ago from the same address is not read again. A call that changes
// something always reads the token and its owner afresh, so that a
// revocation or a role taken away, which other replicas learn of within
// milliseconds, is never one of those milliseconds late for a write.
func (s *Server) tokenUser(req *http.Request, secret, ip string) (*portal.User, *portal.Token, error) {
	hash := store.TokenHash(secret)
	read := req.Method == http.MethodGet || req.Method == http.MethodHead
	if read {
		if t, u, ok := s.authCache.getToken(hash, ip); ok {
			return u, t, nil
		}
	}
	gen := s.authCache.begin()
	u, t, err := s.wf.TokenUser(req.Context(), secret, ip)
	if err != nil || !read {
		return u, t, err
	}
	// TokenUse notes a use at most once a minute from one address, and
	// returns the token as it was: from that, when this use was noted.
	noted := time.Now()
	if t.LastUsedAt != nil && t.LastUsedIP == ip && noted.Sub(*t.LastUsedAt) < time.Minute {
		noted = *t.LastUsedAt
	}
	s.authCache.keepToken(gen, hash, ip, t, u, noted)
	return u, t, nil
}

// apiRevokeTokens revokes every active token of the person ?user names;
// the parameter is required, so that no call revokes all of one's own by
// accident.
func (s *Server) apiRevokeTokens(call apiCall[struct{}]) (any, error) {
	if call.c.QueryParam("user") == "" {
		return nil, portal.Invalid("user", "Name whose tokens to revoke: DELETE /api/v1/tokens?user=ID, your own ID for yours.")
	}
	id, err := tokenOwner(call.call)
	if err != nil {
		return nil, err
	}
	n, err := s.wf.RevokeTokens(call.ctx, call.actor, id)
	if err != nil {
		return nil, err
	}
	s.authCache.dropUser(id) // now here; other replicas when notified
	return map[string]int{"revoked": n}, nil
}

func (s *Server) apiRevokeToken(call apiCall[struct{}]) (any, error) {
	return shown(tokenJSON)(s.revoked(s.wf.RevokeToken(call.ctx, call.actor, call.id)))
}

// revoked drops a token just revoked from what this replica holds, at once:
// other replicas drop it when notified.
func (s *Server) revoked(t *portal.Token, err error) (*portal.Token, error) {
	if err == nil {
		s.authCache.dropUser(t.UserID)
	}
	return t, err
}

// tokensPage is the person's tokens, and after a creation the new token,
// shown this once.
type tokensPage struct {
	Tokens      []*portal.Token // a page of them, newest first
	Pager       pager
	New         *workflow.NewToken
	Form        newTokenJSON
	Error       *portal.Error
	Scopes      []portal.Scope
	DefaultDays int
	MaxDays     int
	Max         int
	Now         time.Time
}

func (s *Server) tokensData(cl call) (tokensPage, error) {
	q, err := cl.pageQuery("cursor")
	if err != nil {
		return tokensPage{}, err
	}
	ts, err := s.wf.Tokens(cl.ctx, cl.actor, cl.actor.User.ID, q)
	if err != nil {
		return tokensPage{}, err
	}
	return tokensPage{Tokens: ts.Items, Pager: newPager("Pages of tokens", "/tokens", cl.c.QueryParams(), "cursor", ts.Next, false), Scopes: portal.Scopes(), DefaultDays: portal.DefaultTokenDays,
		MaxDays: portal.MaxTokenDays, Max: portal.MaxActiveTokens, Now: time.Now(),
		Form: newTokenJSON{Scopes: []string{string(portal.ScopeRead)}, ExpiresInDays: portal.DefaultTokenDays}}, nil
}

func (s *Server) tokens(cl call) (page, error) {
	d, err := s.tokensData(cl)
	return page{Title: "Tokens", Data: d}, err
}

// createToken makes a token from the page's form and shows it in the
// answer itself: a flash message would keep it in the session, in the
// database.
func (s *Server) createToken(c echo.Context) error {
	cl, err := s.newCall(c)
	if err != nil {
		return err
	}
	in := newTokenJSON{Name: c.FormValue("name"), Scopes: c.Request().PostForm["scopes"]}
	status := http.StatusOK
	var nt *workflow.NewToken
	if days := strings.TrimSpace(c.FormValue("expires_in_days")); days != "" {
		if in.ExpiresInDays, err = strconv.Atoi(days); err != nil {
			err = portal.Invalid("expires_in_days", "Give the token's lifetime as a whole number of days, from 1 to %d.", portal.MaxTokenDays)
		}
	}
	if err == nil {
		nt, err = s.wf.CreateToken(cl.ctx, cl.actor, workflow.TokenInput(in))
	}
	var refusal *portal.Error
	if err != nil {
		st, pe := problem(err)
		if st >= 500 || st == http.StatusTooManyRequests {
			return err
		}
		status, refusal = st, pe
		if st == http.StatusForbidden {
			s.auditRefusal(c, pe.Message)
		}
		if pe.Secret {
			in.Name = ""
		}
	}
	d, lerr := s.tokensData(cl)
	if lerr != nil {
		return lerr
	}
	d.New, d.Error = nt, refusal
	if refusal != nil {
		d.Form = in
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return s.render(c, status, "tokens", page{Title: "Tokens", Data: d})
}

// revokeToken revokes one of the person's tokens from the page.
func (s *Server) revokeToken(f call) (done, error) {
	t, err := s.revoked(s.wf.RevokeToken(f.ctx, f.actor, f.id))
	if err != nil {
		return done{}, err
	}
	return done{"success", fmt.Sprintf("The token %q is revoked: it opens nothing from now on.", t.Name), "/tokens"}, nil
}
