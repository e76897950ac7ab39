// Package test checks the deployment files. It renders the Helm chart with
// the real helm and decodes every manifest strictly against the Kubernetes
// API types, so that a misspelt field fails; it does the same for the
// agent's values for 2i2c's support chart; and it loads docker-compose.yml
// with compose-go, the loader `docker compose` uses. It is a module of its
// own so that k8s.io/api and compose-go stay out of the portal's go.mod.
package test
