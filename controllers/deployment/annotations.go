package deployment

import (
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
)

// Annotation and label names shared with kubectl.
const (
	DefaultDeploymentUniqueLabelKey = appsv1.DefaultDeploymentUniqueLabelKey // "pod-template-hash"
	RevisionAnnotation              = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation       = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation       = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation           = "deployment.kubernetes.io/max-replicas"
	lastAppliedAnnotation           = "kubectl.kubernetes.io/last-applied-configuration"
	rollbackToAnnotation            = "deprecated.deployment.rollback.to"
	// maxRevisionHistoryLength bounds the revision-history annotation, as upstream's
	// maxRevHistoryLengthInChars.
	maxRevisionHistoryLength = 2000
)

// skipCopy are the Deployment annotations not copied to its ReplicaSets.
var skipCopy = map[string]bool{
	lastAppliedAnnotation: true, RevisionAnnotation: true, RevisionHistoryAnnotation: true,
	DesiredReplicasAnnotation: true, MaxReplicasAnnotation: true, rollbackToAnnotation: true,
}

// Revision reads a ReplicaSet's (or Deployment's) revision annotation; 0 when absent.
func Revision(annotations map[string]string) int64 {
	v, err := strconv.ParseInt(annotations[RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// MaxRevision is the highest revision among the ReplicaSets.
func MaxRevision(sets []*appsv1.ReplicaSet) int64 {
	var max int64
	for _, rs := range sets {
		if v := Revision(rs.Annotations); v > max {
			max = v
		}
	}
	return max
}

// SetNewReplicaSetAnnotations copies the Deployment's annotations (kubernetes.io/change-cause
// among them, which `kubectl rollout history` shows) to the new ReplicaSet, moves its
// revision up to newRevision (remembering the old one in revision-history), and for a new
// ReplicaSet sets the desired/max replicas annotations. It reports whether anything changed.
func SetNewReplicaSetAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision int64, exists bool) bool {
	changed := false
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	for k, v := range d.Annotations {
		if skipCopy[k] || rs.Annotations[k] == v {
			continue
		}
		rs.Annotations[k] = v
		changed = true
	}
	oldRevision := rs.Annotations[RevisionAnnotation]
	oldInt, err := strconv.ParseInt(oldRevision, 10, 64)
	if err != nil && oldRevision != "" {
		return changed
	}
	if oldInt < newRevision {
		rs.Annotations[RevisionAnnotation] = strconv.FormatInt(newRevision, 10)
		changed = true
		if oldRevision != "" {
			history := rs.Annotations[RevisionHistoryAnnotation]
			parts := []string{}
			if history != "" {
				parts = strings.Split(history, ",")
			}
			parts = append(parts, oldRevision)
			for len(strings.Join(parts, ",")) > maxRevisionHistoryLength && len(parts) > 1 {
				parts = parts[1:]
			}
			rs.Annotations[RevisionHistoryAnnotation] = strings.Join(parts, ",")
		}
	}
	if !exists && setReplicasAnnotations(rs, *d.Spec.Replicas, *d.Spec.Replicas+MaxSurge(d)) {
		changed = true
	}
	return changed
}

// setReplicasAnnotations records the deployment size a ReplicaSet was last scaled for,
// which proportional scaling reads back.
func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, max int32) bool {
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	d, m := strconv.Itoa(int(desired)), strconv.Itoa(int(max))
	if rs.Annotations[DesiredReplicasAnnotation] == d && rs.Annotations[MaxReplicasAnnotation] == m {
		return false
	}
	rs.Annotations[DesiredReplicasAnnotation] = d
	rs.Annotations[MaxReplicasAnnotation] = m
	return true
}

func intAnnotation(rs *appsv1.ReplicaSet, key string) (int32, bool) {
	v, ok := rs.Annotations[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(n), true
}
