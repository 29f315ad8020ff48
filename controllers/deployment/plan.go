package deployment

import (
	"math"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Scale is one planned change of a ReplicaSet's spec.replicas.
type Scale struct {
	RS *appsv1.ReplicaSet
	To int32
}

func replicas(rs *appsv1.ReplicaSet) int32 {
	if rs == nil || rs.Spec.Replicas == nil {
		return 0
	}
	return *rs.Spec.Replicas
}

func isRolling(d *appsv1.Deployment) bool {
	return d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.Type == ""
}

// ResolveFenceposts turns maxSurge and maxUnavailable into counts for the desired replicas:
// surge rounds up, unavailable rounds down, and both zero means unavailable 1.
func ResolveFenceposts(d *appsv1.Deployment) (surge, unavailable int32) {
	desired := *d.Spec.Replicas
	ms, mu := intstr.FromString("25%"), intstr.FromString("25%")
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			ms = *ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			mu = *ru.MaxUnavailable
		}
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(&ms, int(desired), true)
	if err != nil {
		s = 0
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(&mu, int(desired), false)
	if err != nil {
		u = 0
	}
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u)
}

// MaxSurge is how many pods above the desired count a rolling update may run.
func MaxSurge(d *appsv1.Deployment) int32 {
	if !isRolling(d) {
		return 0
	}
	s, _ := ResolveFenceposts(d)
	return s
}

// MaxUnavailable is how many of the desired pods may be unavailable during a rollout.
func MaxUnavailable(d *appsv1.Deployment) int32 {
	if !isRolling(d) || *d.Spec.Replicas == 0 {
		return 0
	}
	_, u := ResolveFenceposts(d)
	return min(u, *d.Spec.Replicas)
}

// totalReplicas sums spec.replicas.
func totalReplicas(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		n += replicas(rs)
	}
	return n
}

// NewRSNewReplicas is the size the new ReplicaSet may grow to now: for Recreate the desired
// count; for RollingUpdate as much as maxSurge leaves room for, up to the desired count.
func NewRSNewReplicas(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	if !isRolling(d) {
		return *d.Spec.Replicas
	}
	if replicas(newRS) == *d.Spec.Replicas {
		return replicas(newRS)
	}
	current := totalReplicas(all)
	maxTotal := *d.Spec.Replicas + MaxSurge(d)
	if current >= maxTotal {
		return replicas(newRS)
	}
	up := min(maxTotal-current, *d.Spec.Replicas-replicas(newRS))
	return replicas(newRS) + up
}

// PlanNewReplicaSet is the rolling update's step for the new ReplicaSet (nil: no change).
func PlanNewReplicaSet(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) *Scale {
	desired := *d.Spec.Replicas
	switch cur := replicas(newRS); {
	case cur == desired:
		return nil
	case cur > desired:
		return &Scale{RS: newRS, To: desired}
	default:
		to := NewRSNewReplicas(d, all, newRS)
		if to == cur {
			return nil
		}
		return &Scale{RS: newRS, To: to}
	}
}

func byCreation(sets []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	out := append([]*appsv1.ReplicaSet(nil), sets...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].CreationTimestamp.Equal(&out[j].CreationTimestamp) {
			return out[i].Name < out[j].Name
		}
		return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp)
	})
	return out
}

// PlanOldReplicaSets is the rolling update's step for the old ReplicaSets: first drop their
// unavailable replicas (they count for nothing), then scale them down as far as
// availability above desired-maxUnavailable allows, oldest first.
func PlanOldReplicaSets(d *appsv1.Deployment, all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []Scale {
	if totalReplicas(old) == 0 {
		return nil
	}
	minAvailable := *d.Spec.Replicas - MaxUnavailable(d)
	newUnavailable := replicas(newRS)
	if newRS != nil {
		newUnavailable -= newRS.Status.AvailableReplicas
	}
	maxScaledDown := totalReplicas(all) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return nil
	}
	target := map[*appsv1.ReplicaSet]int32{}
	for _, rs := range old {
		target[rs] = replicas(rs)
	}
	// Clean up unhealthy replicas first.
	var cleaned int32
	for _, rs := range byCreation(old) {
		if cleaned >= maxScaledDown {
			break
		}
		if target[rs] == 0 {
			continue
		}
		unhealthy := target[rs] - rs.Status.AvailableReplicas
		if unhealthy <= 0 {
			continue
		}
		n := min(maxScaledDown-cleaned, unhealthy)
		target[rs] -= n
		cleaned += n
	}
	// Then scale down healthy replicas while enough stay available.
	var available int32
	for _, rs := range all {
		if rs != nil {
			available += rs.Status.AvailableReplicas
		}
	}
	if available > minAvailable {
		toScale := available - minAvailable
		var done int32
		for _, rs := range byCreation(old) {
			if done >= toScale {
				break
			}
			if target[rs] == 0 {
				continue
			}
			n := min(target[rs], toScale-done)
			target[rs] -= n
			done += n
		}
	}
	var out []Scale
	for _, rs := range byCreation(old) {
		if target[rs] != replicas(rs) {
			out = append(out, Scale{RS: rs, To: target[rs]})
		}
	}
	return out
}

// activeOrLatest returns the only ReplicaSet with replicas, or (none having any) the new
// one or the newest old one; nil when several have replicas.
func activeOrLatest(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	var all []*appsv1.ReplicaSet
	if newRS != nil {
		all = append(all, newRS)
	}
	all = append(all, old...)
	var active []*appsv1.ReplicaSet
	for _, rs := range all {
		if replicas(rs) > 0 {
			active = append(active, rs)
		}
	}
	switch len(active) {
	case 0:
		if newRS != nil {
			return newRS
		}
		sorted := byCreation(old)
		if len(sorted) == 0 {
			return nil
		}
		return sorted[len(sorted)-1]
	case 1:
		return active[0]
	}
	return nil
}

// IsSaturated: the new ReplicaSet runs all desired replicas, available.
func IsSaturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, ok := intAnnotation(rs, DesiredReplicasAnnotation)
	return ok && replicas(rs) == *d.Spec.Replicas && desired == *d.Spec.Replicas && rs.Status.AvailableReplicas == *d.Spec.Replicas
}

// PlanScale is the Deployment's answer to a change of spec.replicas (or a pause): with one
// active ReplicaSet it takes the new size; during a rollout the change is shared among the
// active ReplicaSets in proportion to their size (upstream's proportional scaling). Every
// ReplicaSet in the result also gets its replicas annotations refreshed.
func PlanScale(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) []Scale {
	desired := *d.Spec.Replicas
	if rs := activeOrLatest(newRS, old); rs != nil {
		if replicas(rs) == desired {
			return nil
		}
		return []Scale{{RS: rs, To: desired}}
	}
	if IsSaturated(d, newRS) {
		var out []Scale
		for _, rs := range old {
			if replicas(rs) > 0 {
				out = append(out, Scale{RS: rs, To: 0})
			}
		}
		return out
	}
	if !isRolling(d) {
		return nil
	}
	var active []*appsv1.ReplicaSet
	for _, rs := range append([]*appsv1.ReplicaSet{newRS}, old...) {
		if rs != nil && replicas(rs) > 0 {
			active = append(active, rs)
		}
	}
	current := totalReplicas(active)
	allowed := int32(0)
	if desired > 0 {
		allowed = desired + MaxSurge(d)
	}
	toAdd := allowed - current
	if toAdd == 0 {
		return nil
	}
	// Adding goes to the largest (newest on ties) first, removing from the largest (oldest
	// on ties) first, so that rounding leftovers land there.
	sort.SliceStable(active, func(i, j int) bool {
		ri, rj := replicas(active[i]), replicas(active[j])
		if ri != rj {
			return ri > rj
		}
		if toAdd > 0 {
			return active[j].CreationTimestamp.Before(&active[i].CreationTimestamp)
		}
		return active[i].CreationTimestamp.Before(&active[j].CreationTimestamp)
	})
	sizes := make([]int32, len(active))
	var added int32
	for i, rs := range active {
		p := proportion(d, rs, toAdd, added)
		sizes[i] = replicas(rs) + p
		added += p
	}
	if left := toAdd - added; left != 0 && len(active) > 0 {
		sizes[0] = max(0, sizes[0]+left)
	}
	var out []Scale
	for i, rs := range active {
		if sizes[i] != replicas(rs) {
			out = append(out, Scale{RS: rs, To: sizes[i]})
		}
	}
	return out
}

func proportion(d *appsv1.Deployment, rs *appsv1.ReplicaSet, toAdd, added int32) int32 {
	if replicas(rs) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	frac := fraction(d, rs)
	allowed := toAdd - added
	if toAdd > 0 {
		return min(frac, allowed)
	}
	return max(frac, allowed)
}

// fraction is how much rs should change to keep its share of the deployment, from the size
// it was scaled for (its max-replicas annotation).
func fraction(d *appsv1.Deployment, rs *appsv1.ReplicaSet) int32 {
	if *d.Spec.Replicas == 0 {
		return -replicas(rs)
	}
	deploymentReplicas := *d.Spec.Replicas + MaxSurge(d)
	annotated, ok := intAnnotation(rs, MaxReplicasAnnotation)
	if !ok || annotated == 0 {
		annotated = d.Status.Replicas
	}
	if annotated == 0 {
		return 0
	}
	size := float64(replicas(rs)*deploymentReplicas) / float64(annotated)
	return int32(math.Round(size)) - replicas(rs)
}

// IsScalingEvent: some active ReplicaSet was sized for another spec.replicas.
func IsScalingEvent(d *appsv1.Deployment, sets []*appsv1.ReplicaSet) bool {
	for _, rs := range sets {
		if replicas(rs) == 0 {
			continue
		}
		if desired, ok := intAnnotation(rs, DesiredReplicasAnnotation); ok && desired != *d.Spec.Replicas {
			return true
		}
	}
	return false
}

// HistoryToDelete picks the old ReplicaSets beyond revisionHistoryLimit to delete, lowest
// revision first, skipping any that still has pods or an unobserved change.
func HistoryToDelete(d *appsv1.Deployment, old []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var cleanable []*appsv1.ReplicaSet
	for _, rs := range old {
		if rs.DeletionTimestamp == nil {
			cleanable = append(cleanable, rs)
		}
	}
	diff := len(cleanable) - int(*d.Spec.RevisionHistoryLimit)
	if diff <= 0 {
		return nil
	}
	sort.SliceStable(cleanable, func(i, j int) bool {
		ri, rj := Revision(cleanable[i].Annotations), Revision(cleanable[j].Annotations)
		if ri != rj {
			return ri < rj
		}
		return cleanable[i].CreationTimestamp.Before(&cleanable[j].CreationTimestamp)
	})
	var out []*appsv1.ReplicaSet
	for _, rs := range cleanable[:diff] {
		if rs.Status.Replicas != 0 || replicas(rs) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		out = append(out, rs)
	}
	return out
}
