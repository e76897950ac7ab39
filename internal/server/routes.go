package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// routes registers every route, in groups by audience: public, signed in,
// staff; and the JSON API with the same split.
func (s *Server) routes() {
	e := s.echo
	e.Pre(middleware.RemoveTrailingSlashWithConfig(middleware.TrailingSlashConfig{RedirectCode: 308}))
	e.Use(
		s.requestID,
		s.logRequests,
		s.measure,
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true}),
		s.securityHeaders(),
		middleware.BodyLimit(bodyLimit),
		readForm,
	)
	if s.cfg.Dev {
		e.Use(s.devBaseHost)
	}

	// Probes and static files: no session.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if !s.cfg.SeparateMetrics {
		e.GET("/metrics", s.serveMetrics())
	}
	e.GET("/static/*", s.static)
	if s.cfg.DevIdentityProvider != nil {
		e.Any("/oidc/*", echo.WrapHandler(s.cfg.DevIdentityProvider))
	}

	// Publication to each cluster's agent: the cluster's sync token, no
	// session. Rendered from PostgreSQL at each request, so every replica
	// serves the same set.
	e.GET(webconfig.PublicationPath(":name"), s.webConfig)

	// Public pages, with a session so the header knows who is signed in.
	// Every state-changing request comes from the portal's own pages, with
	// the session's CSRF token.
	browser := []echo.MiddlewareFunc{s.openSessions, echo.WrapMiddleware(s.sessions.LoadAndSave), s.loadUser, s.crossOrigin, s.csrf}
	public := e.Group("", browser...)
	public.GET("/", pageHandler(s, "home", s.home))
	signInLimit := signInLimit() // one budget for both steps of a sign-in
	public.GET("/login", s.login, signInLimit)
	public.GET("/auth/callback", s.callback, signInLimit)
	public.POST("/logout", s.logout)
	if s.cfg.DevMail != nil {
		// What development mode would have sent; `portal serve` has none.
		public.GET("/dev/mail", pageHandler(s, "dev_mail", s.devMail))
		public.GET("/dev/mail/:id/html", s.devMailHTML)
	}

	// Signed in: customers and staff.
	signedIn := public.Group("", s.requireUser)
	signedIn.GET("/dashboard", pageHandler(s, "dashboard", s.dashboard))
	signedIn.GET("/requests/new", s.newRequest)
	requestLimit := requestLimit() // one budget for new requests and renewals, pages and API
	signedIn.POST("/requests", s.createRequest, requestLimit)
	signedIn.GET("/requests/:id", pageHandler(s, "request", s.showRequest))
	signedIn.GET("/requests/:id/cancel", pageHandler(s, "confirm", s.confirmCancel))
	signedIn.POST("/requests/:id/cancel", formHandler(s, nil, s.cancelRequest))
	signedIn.GET("/credentials/:id", pageHandler(s, "credential", s.showCredential))
	signedIn.GET("/credentials/:id/credentials.txt.age", s.download, crossSiteNavigation)
	signedIn.GET("/credentials/:id/revoke", pageHandler(s, "confirm", s.confirmRevoke))
	signedIn.POST("/credentials/:id/revoke", formHandler(s, revokeURL, s.revoke))
	signedIn.GET("/credentials/:id/report-compromised", pageHandler(s, "confirm", s.confirmReportCompromised))
	signedIn.POST("/credentials/:id/report-compromised", formHandler(s, reportURL, s.reportCompromised))
	signedIn.POST("/credentials/:id/renew", formHandler(s, nil, s.renew), requestLimit)
	signedIn.GET("/sessions", pageHandler(s, "sessions", s.ownSessions))
	signedIn.POST("/sessions/:id/end", formHandler(s, nil, s.endSession))
	signedIn.POST("/sessions/end-all", formHandler(s, nil, s.signOutEverywhere))
	tokenLimit := tokenCreationLimit() // one budget for the page and the API
	signedIn.GET("/tokens", pageHandler(s, "tokens", s.tokens))
	signedIn.POST("/tokens", s.createToken, tokenLimit)
	signedIn.POST("/tokens/:id/revoke", formHandler(s, nil, s.revokeToken))

	// Staff only.
	staff := signedIn.Group("/staff", s.requireStaff)
	staff.GET("", s.staffHome)
	staff.GET("/requests", pageHandler(s, "staff_queue", s.queue))
	staff.GET("/requests/:id/approve", pageHandler(s, "confirm", s.confirmApprove))
	staff.POST("/requests/:id/approve", formHandler(s, queueURL, s.approve))
	staff.GET("/requests/:id/deny", pageHandler(s, "confirm", s.confirmDeny))
	staff.POST("/requests/:id/deny", formHandler(s, queueURL, s.deny))
	staff.GET("/clusters", pageHandler(s, "staff_clusters", s.clusters))
	staff.GET("/clusters/new", pageHandler(s, "staff_cluster", s.newCluster))
	staff.POST("/clusters", s.saveCluster)
	staff.GET("/clusters/:id/edit", pageHandler(s, "staff_cluster", s.editCluster))
	staff.POST("/clusters/:id", s.saveCluster)
	staff.GET("/clusters/:id/sync-token", pageHandler(s, "confirm", s.confirmRotate))
	staff.POST("/clusters/:id/sync-token", s.rotateSyncToken)
	staff.GET("/clusters/:id/sync-token/new", pageHandler(s, "staff_sync_token", s.newSyncToken))
	staff.GET("/revocations", pageHandler(s, "staff_revocations", s.revocations))
	staff.GET("/people", pageHandler(s, "staff_people", s.people))
	staff.GET("/people/:id/sessions", pageHandler(s, "sessions", s.personSessions))
	staff.POST("/people/:id/sessions/end", formHandler(s, nil, s.endPersonSessions))
	staff.GET("/notifications", pageHandler(s, "staff_notifications", s.notifications))
	staff.POST("/notifications/:id/retry", formHandler(s, nil, s.retryMessage))
	staff.GET("/audit", s.auditPage)
	staff.POST("/audit/verify", s.verifyAudit)
	staff.GET("/audit/export.csv", s.exportAudit(exportCSV))
	staff.GET("/audit/export.jsonl", s.exportAudit(exportJSONL))

	// The JSON API: a personal access token (bearer) or the browser session
	// authenticates it; each route names the scope a token needs for it.
	// Authorization is the workflow's, as for the pages.
	api := apiRoutes{g: e.Group("/api/v1", s.apiAuth), prefix: "/api/v1", scopes: s.apiScopes}
	read, request, decide, admin := portal.ScopeRead, portal.ScopeRequest, portal.ScopeDecide, portal.ScopeAdmin
	api.add(http.MethodGet, "/clusters", read, apiHandler(s, http.StatusOK, s.apiClusters))
	api.add(http.MethodPost, "/clusters", admin, apiHandler(s, http.StatusCreated, s.apiCreateCluster))
	api.add(http.MethodGet, "/clusters/:name", read, apiHandler(s, http.StatusOK, s.apiCluster))
	api.add(http.MethodPut, "/clusters/:name", admin, apiHandler(s, http.StatusOK, s.apiUpdateCluster))
	api.add(http.MethodGet, "/requests", read, apiHandler(s, http.StatusOK, s.apiRequests))
	api.add(http.MethodPost, "/requests", request, apiHandler(s, http.StatusCreated, s.apiCreateRequest), requestLimit)
	api.add(http.MethodGet, "/requests/:id", read, apiHandler(s, http.StatusOK, s.apiRequest))
	api.add(http.MethodPost, "/requests/:id/approve", decide, apiHandler(s, http.StatusOK, s.apiApprove))
	api.add(http.MethodPost, "/requests/:id/deny", decide, apiHandler(s, http.StatusOK, s.apiDeny))
	api.add(http.MethodPost, "/requests/:id/cancel", request, apiHandler(s, http.StatusOK, s.apiCancel))
	api.add(http.MethodGet, "/credentials/:id", read, apiHandler(s, http.StatusOK, s.apiCredential))
	api.add(http.MethodGet, "/credentials/:id/credentials.txt.age", read, s.download, crossSiteNavigation)
	api.add(http.MethodPost, "/credentials/:id/revoke", request, apiHandler(s, http.StatusOK, s.apiRevoke))
	api.add(http.MethodPost, "/credentials/:id/report-compromised", request, apiHandler(s, http.StatusOK, s.apiReportCompromised))
	api.add(http.MethodPost, "/credentials/:id/renew", request, apiHandler(s, http.StatusCreated, s.apiRenew), requestLimit)
	api.add(http.MethodGet, "/revocations", read, apiHandler(s, http.StatusOK, s.apiRevocations))
	api.add(http.MethodPost, "/clusters/:name/sync-token", admin, apiHandler(s, http.StatusOK, s.apiRotateSyncToken))
	api.add(http.MethodGet, "/audit", read, s.apiAudit, s.requireStaff)
	api.add(http.MethodGet, "/audit/export", read, s.apiAuditExport, s.requireStaff)
	api.add(http.MethodGet, "/tokens", read, apiHandler(s, http.StatusOK, s.apiTokens))
	api.add(http.MethodPost, "/tokens", sessionOnly, apiHandler(s, http.StatusCreated, s.apiCreateToken), tokenLimit)
	api.add(http.MethodDelete, "/tokens", request, apiHandler(s, http.StatusOK, s.apiRevokeTokens))
	api.add(http.MethodDelete, "/tokens/:id", request, apiHandler(s, http.StatusOK, s.apiRevokeToken))

	// echo's groups catch unknown paths below their prefix so that their
	// middleware runs for the 404. The signed-in group's prefix is the whole
	// site; an unknown path is a plain 404 for everyone, not a sign-in prompt.
	e.RouteNotFound("/*", func(echo.Context) error { return echo.ErrNotFound }, browser...)
}

// bodyLimit caps every request body: the largest legitimate one is a request
// form with a 4 KiB key and a 2000-character justification. msgTooLarge
// says so to whoever sends more.
const (
	bodyLimit   = "64K"
	msgTooLarge = "That was more than the portal takes at once: at most 64 KB. " +
		"Shorten what you typed or pasted (a justification, a note, a reason) and send it again."
)
