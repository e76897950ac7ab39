package server

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// routes registers every route, in groups by audience: public, signed in,
// staff.
func (s *Server) routes() {
	e := s.echo
	e.Pre(middleware.RemoveTrailingSlashWithConfig(middleware.TrailingSlashConfig{RedirectCode: 308}))
	e.Use(
		s.requestID,
		s.logRequests,
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true}),
		s.securityHeaders(),
		middleware.BodyLimit(bodyLimit),
	)

	// Probes and static files: no session.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/static/*", s.static)
	if s.cfg.DevIdentityProvider != nil {
		e.Any("/oidc/*", echo.WrapHandler(s.cfg.DevIdentityProvider))
	}

	// Public pages, with a session so the header knows who is signed in.
	browser := []echo.MiddlewareFunc{echo.WrapMiddleware(s.sessions.LoadAndSave), s.csrf(), s.loadUser}
	public := e.Group("", browser...)
	public.GET("/", s.home)
	public.GET("/login", s.login, signInLimit())
	public.GET("/auth/callback", s.callback, signInLimit())
	public.POST("/logout", s.logout)

	// Signed in: customers and staff.
	signedIn := public.Group("", s.requireUser)
	signedIn.GET("/dashboard", s.dashboard)

	// Staff only.
	staff := signedIn.Group("/staff", s.requireStaff)
	staff.GET("", s.staffHome)

	// echo's groups catch unknown paths below their prefix so that their
	// middleware runs for the 404. The signed-in group's prefix is the whole
	// site; an unknown path is a plain 404 for everyone, not a sign-in prompt.
	e.RouteNotFound("/*", func(echo.Context) error { return echo.ErrNotFound }, browser...)
}

// bodyLimit caps every request body: the largest legitimate one is a request
// form with a 4 KiB key and a 2000-character justification.
const bodyLimit = "64K"
