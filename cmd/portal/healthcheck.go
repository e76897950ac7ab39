package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// cmdHealthcheck asks a running portal whether it is ready, for container
// health checks in images without curl or a shell.
func cmdHealthcheck(ctx context.Context, e env, args []string) error {
	var target string
	settings := []setting{{flag: "url", def: "http://127.0.0.1:8080/readyz", parse: stringVar(&target),
		usage: "the address to check; 2xx is healthy"}}
	if _, err := parseSettings("healthcheck", "Exit 0 if the portal answers its readiness check, 1 otherwise.",
		settings, args, e.getenv, e.stdout); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("%w: --url %q: %s", errUsage, target, err.Error())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("unhealthy: %s answered %s", target, resp.Status)
	}
	fmt.Fprintln(e.stdout, "healthy")
	return nil
}
