// Package daemonset is the DaemonSet controller: one pod per eligible node (nodeSelector,
// required node affinity, taints against the pod's and the daemon default tolerations),
// pods pinned to their node by node affinity and bound by the scheduler, ControllerRevision
// history labelled with controller-revision-hash, RollingUpdate (maxUnavailable, maxSurge)
// and OnDelete, and the status fields `kubectl rollout status ds/x` reads. Behaviour follows
// Kubernetes' pkg/controller/daemon.
package daemonset
