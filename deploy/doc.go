// Package deploy holds how Flamestream is deployed: local/ (the scripts that run the real servers on
// 127.0.0.1 for development and CI), docker-compose.yml for one host, k8s/ for Kubernetes, and the
// operations guide. The package has no code: its tests check the deployment files against the binary's
// configuration schema and the agent API, because Docker and Kubernetes cannot run where the tests run.
package deploy
