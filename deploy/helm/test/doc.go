// Package test checks the Helm chart and the agent's values for the support
// chart: it renders them with the real helm and decodes every manifest
// strictly against the Kubernetes API types, so that a misspelt field fails.
// It is a module of its own so that k8s.io/api stays out of the portal's
// go.mod.
package test
