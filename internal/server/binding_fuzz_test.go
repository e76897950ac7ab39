package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// bindingRoute is one route whose body FuzzBinding sends: a call of the JSON
// API or a page's form, as customer or staff.
type bindingRoute struct {
	method, path string // path as routes registers it, with :id or :name
	staff        bool
	handler      func(s *Server) echo.HandlerFunc
}

// bindingRoutes are the routes that read a body: request creation, approve,
// deny, revoke, report, cluster create and update, token create, on the API
// and on the pages. The handlers are the ones routes registers, so that
// the same binding, validation and workflow run.
var bindingRoutes = []bindingRoute{
	{http.MethodPost, "/api/v1/requests", false, func(s *Server) echo.HandlerFunc { return apiHandler(s, http.StatusCreated, s.apiCreateRequest) }},
	{http.MethodPost, "/api/v1/requests/:id/approve", true, func(s *Server) echo.HandlerFunc { return apiHandler(s, http.StatusOK, s.apiApprove) }},
	{http.MethodPost, "/api/v1/requests/:id/deny", true, func(s *Server) echo.HandlerFunc { return apiHandler(s, http.StatusOK, s.apiDeny) }},
	{http.MethodPost, "/api/v1/credentials/:id/revoke", false, func(s *Server) echo.HandlerFunc { return apiHandler(s, http.StatusOK, s.apiRevoke) }},
	{http.MethodPost, "/api/v1/credentials/:id/report-compromised", false, func(s *Server) echo.HandlerFunc {
		return apiHandler(s, http.StatusOK, s.apiReportCompromised)
	}},
	{http.MethodPost, "/api/v1/clusters", true, func(s *Server) echo.HandlerFunc { return apiHandler(s, http.StatusCreated, s.apiCreateCluster) }},
	{http.MethodPut, "/api/v1/clusters/:name", true, func(s *Server) echo.HandlerFunc { return apiHandler(s, http.StatusOK, s.apiUpdateCluster) }},
	{http.MethodPost, "/api/v1/tokens", false, func(s *Server) echo.HandlerFunc { return apiHandler(s, http.StatusCreated, s.apiCreateToken) }},
	{http.MethodPost, "/requests", false, func(s *Server) echo.HandlerFunc { return s.createRequest }},
	{http.MethodPost, "/staff/requests/:id/approve", true, func(s *Server) echo.HandlerFunc { return formHandler(s, queueURL, s.approve) }},
	{http.MethodPost, "/staff/requests/:id/deny", true, func(s *Server) echo.HandlerFunc { return formHandler(s, queueURL, s.deny) }},
	{http.MethodPost, "/credentials/:id/revoke", false, func(s *Server) echo.HandlerFunc { return formHandler(s, revokeURL, s.revoke) }},
	{http.MethodPost, "/credentials/:id/report-compromised", false, func(s *Server) echo.HandlerFunc {
		return formHandler(s, reportURL, s.reportCompromised)
	}},
	{http.MethodPost, "/staff/clusters", true, func(s *Server) echo.HandlerFunc { return s.saveCluster }},
	{http.MethodPost, "/staff/clusters/:id", true, func(s *Server) echo.HandlerFunc { return s.saveCluster }},
	{http.MethodPost, "/tokens", false, func(s *Server) echo.HandlerFunc { return s.createToken }},
}

// FuzzBinding sends any body to the routes that read one, signed in as
// the customer alice (who holds credential 1 and request 1) or sam of the
// staff (request 2, bob's, waits in the queue), on a real portal and
// PostgreSQL made once per fuzzing process. route picks the route (modulo
// their number), param is the path's :id or :name. No body may cause a
// 500; a refusal is a 4xx with a message. The handler runs behind the
// session and user middleware of its group, called directly rather than
// through the router: the rate limits on new requests and tokens would
// otherwise refuse nearly every input after the first few, and the CSRF
// check every form. The seeds (testdata/fuzz/FuzzBinding) are one good and
// one bad body per route.
func FuzzBinding(f *testing.F) {
	p := newPortal(f, portalOptions{})
	p.addCluster("awi-ciroh")
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	p.issue(alice, sam, "awi-ciroh")
	p.signedIn("bob@example.org").requestAccess("awi-ciroh", newKey(f).Recipient().String(), "Dashboards for the research team.")
	base, _ := url.Parse(p.URL)
	s := p.Server
	handlers := make([]echo.HandlerFunc, len(bindingRoutes))
	for i, r := range bindingRoutes {
		handlers[i] = s.openSessions(echo.WrapMiddleware(s.sessions.LoadAndSave)(s.loadUser(r.handler(s))))
	}

	f.Fuzz(func(t *testing.T, route uint8, param, body string) {
		r := bindingRoutes[int(route)%len(bindingRoutes)]
		name, path := "", r.path
		for _, n := range []string{"id", "name"} {
			if strings.Contains(path, "/:"+n) {
				name, path = n, strings.Replace(path, ":"+n, url.PathEscape(param), 1)
			}
		}
		req := httptest.NewRequest(r.method, path, strings.NewReader(body))
		api := strings.HasPrefix(r.path, "/api/")
		if api {
			req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		} else {
			req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationForm)
		}
		who := alice
		if r.staff {
			who = sam
		}
		for _, c := range who.client.Jar.Cookies(base) {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		c := s.echo.NewContext(req, rec)
		c.SetPath(r.path)
		if name != "" {
			c.SetParamNames(name)
			c.SetParamValues(param)
		}
		if err := handlers[int(route)%len(bindingRoutes)](c); err != nil {
			s.handleError(err, c)
		}
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s %s with %q: %d\n%s", r.method, path, body, rec.Code, rec.Body)
		case rec.Code >= 400 && api:
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || strings.TrimSpace(e.Error) == "" {
				t.Fatalf("%s %s with %q: %d without a message: %s", r.method, path, body, rec.Code, rec.Body)
			}
		case rec.Code >= 400 && !strings.Contains(rec.Body.String(), `id="error-heading"`) && !strings.Contains(rec.Body.String(), `role="alert"`):
			t.Fatalf("%s %s with %q: %d without an error page: %s", r.method, path, body, rec.Code, rec.Body)
		}
	})
}
