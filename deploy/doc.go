// Package deploy holds no code: it is the home of churnflow's deployment
// files (the compose stack, Prometheus rules, the Grafana dashboard and the
// Kubernetes manifests) and of deploy_test.go, which checks them without a
// Docker engine or a cluster. See docs/operations.md, "Deploying".
package deploy
