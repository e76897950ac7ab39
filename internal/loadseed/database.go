package loadseed

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DatabaseURL returns dsn, a PostgreSQL URL or key=value string, naming
// database name instead of its own: the measuring tools seed a database of
// their own on the server DATABASE_URL names.
func DatabaseURL(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("DATABASE_URL: %w", err)
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	return dsn + " dbname=" + name, nil
}

// WaitReady waits until the portal at base answers /readyz with 200, for at
// most timeout.
func WaitReady(base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("the portal did not become ready in " + timeout.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
