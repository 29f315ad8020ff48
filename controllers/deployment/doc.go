// Package deployment is the Deployment controller: ReplicaSets named by pod-template-hash,
// RollingUpdate (maxSurge, maxUnavailable) and Recreate rollouts, proportional scaling,
// revisions in the deployment.kubernetes.io/revision annotation (which `kubectl rollout
// undo` and `rollout history` read), pause and resume, progressDeadlineSeconds, and the
// status and conditions `kubectl rollout status` waits on. It follows Kubernetes'
// pkg/controller/deployment; the step planning is in pure functions (plan.go, status.go).
package deployment
