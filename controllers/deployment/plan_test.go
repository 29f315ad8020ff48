package deployment

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func dep(replicas int32, surge, unavail string) *appsv1.Deployment {
	s, u := intstr.Parse(surge), intstr.Parse(unavail)
	ten := int32(10)
	pds := int32(600)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "d1", Generation: 1},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, RevisionHistoryLimit: &ten, ProgressDeadlineSeconds: &pds,
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}}},
	}
}

func rs(name string, created int64, spec, available int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), CreationTimestamp: metav1.NewTime(time.Unix(created, 0))},
		Spec:       appsv1.ReplicaSetSpec{Replicas: &spec},
		Status:     appsv1.ReplicaSetStatus{Replicas: spec, ReadyReplicas: available, AvailableReplicas: available},
	}
}

func TestResolveFenceposts(t *testing.T) {
	tests := []struct {
		replicas         int32
		surge, unavail   string
		wantS, wantU     int32
		wantMaxUnavailab int32
	}{
		{10, "25%", "25%", 3, 2, 2},
		{10, "0", "0", 0, 1, 1},
		{1, "25%", "25%", 1, 0, 0},
		{3, "1", "0", 1, 0, 0},
		{2, "0", "5", 0, 5, 2},
	}
	for _, tt := range tests {
		d := dep(tt.replicas, tt.surge, tt.unavail)
		s, u := ResolveFenceposts(d)
		if s != tt.wantS || u != tt.wantU || MaxUnavailable(d) != tt.wantMaxUnavailab {
			t.Errorf("%d %s/%s: surge %d unavailable %d max %d; want %d %d %d", tt.replicas, tt.surge, tt.unavail,
				s, u, MaxUnavailable(d), tt.wantS, tt.wantU, tt.wantMaxUnavailab)
		}
	}
}

// TestRollingStepPlanning walks a 3-replica rollout with maxSurge 1, maxUnavailable 0:
// the new ReplicaSet grows by one, old shrinks only as new pods become available.
func TestRollingStepPlanning(t *testing.T) {
	d := dep(3, "1", "0")
	tests := []struct {
		name     string
		old, new *appsv1.ReplicaSet
		wantNew  int32 // -1: no change
		wantOld  int32 // -1: no change
	}{
		{"start: surge one", rs("old", 1, 3, 3), rs("new", 2, 0, 0), 1, -1},
		{"surged, new not available: wait", rs("old", 1, 3, 3), rs("new", 2, 1, 0), -1, -1},
		{"one new available: drop one old", rs("old", 1, 3, 3), rs("new", 2, 1, 1), -1, 2},
		{"room again: surge", rs("old", 1, 2, 2), rs("new", 2, 1, 1), 2, -1},
		{"unavailable old replicas go first", rs("old", 1, 3, 1), rs("new", 2, 1, 1), -1, 2},
		{"maxUnavailable 0 and nothing new available: wait", rs("old", 1, 3, 1), rs("new", 2, 1, 0), -1, -1},
		{"done", rs("old", 1, 0, 0), rs("new", 2, 3, 3), -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := []*appsv1.ReplicaSet{tt.old, tt.new}
			if s := PlanNewReplicaSet(d, all, tt.new); (s == nil) != (tt.wantNew == -1) || (s != nil && s.To != tt.wantNew) {
				t.Fatalf("new step = %+v, want %d", s, tt.wantNew)
			} else if s != nil {
				return // the controller stops after a scale-up
			}
			plan := PlanOldReplicaSets(d, all, []*appsv1.ReplicaSet{tt.old}, tt.new)
			if (len(plan) == 0) != (tt.wantOld == -1) || (len(plan) > 0 && plan[0].To != tt.wantOld) {
				t.Fatalf("old step = %+v, want %d", plan, tt.wantOld)
			}
		})
	}
}

func TestRollingNeverBelowMinAvailable(t *testing.T) {
	// Simulate a whole rollout where each step's new pods take one step to become
	// available; availability must never drop below desired - maxUnavailable.
	d := dep(5, "2", "1")
	old, nw := rs("old", 1, 5, 5), rs("new", 2, 0, 0)
	for step := 0; step < 50; step++ {
		all := []*appsv1.ReplicaSet{old, nw}
		// pods come up: status catches up with spec one step later.
		nw.Status.AvailableReplicas, nw.Status.Replicas = *nw.Spec.Replicas, *nw.Spec.Replicas
		old.Status.AvailableReplicas, old.Status.Replicas = min(old.Status.AvailableReplicas, *old.Spec.Replicas), *old.Spec.Replicas
		if s := PlanNewReplicaSet(d, all, nw); s != nil {
			*nw.Spec.Replicas = s.To
		} else {
			for _, s := range PlanOldReplicaSets(d, all, []*appsv1.ReplicaSet{old}, nw) {
				*old.Spec.Replicas = s.To
				old.Status.AvailableReplicas = min(old.Status.AvailableReplicas, s.To)
			}
		}
		if avail := old.Status.AvailableReplicas + nw.Status.AvailableReplicas; avail < 4 {
			t.Fatalf("step %d: %d available, below 4", step, avail)
		}
		if total := *old.Spec.Replicas + *nw.Spec.Replicas; total > 7 {
			t.Fatalf("step %d: %d pods, above 5+2", step, total)
		}
		if *old.Spec.Replicas == 0 && *nw.Spec.Replicas == 5 {
			return
		}
	}
	t.Fatalf("rollout did not finish: old %d new %d", *old.Spec.Replicas, *nw.Spec.Replicas)
}

func TestPlanScaleProportional(t *testing.T) {
	// Mid-rollout a 10-replica deployment (surge 3) is scaled to 20: the 13 allowed pods
	// grow to 23, shared by size.
	d := dep(20, "3", "2")
	old, nw := rs("old", 1, 8, 8), rs("new", 2, 5, 0)
	for _, r := range []*appsv1.ReplicaSet{old, nw} {
		r.Annotations = map[string]string{MaxReplicasAnnotation: "13", DesiredReplicasAnnotation: "10"}
	}
	if !IsScalingEvent(d, []*appsv1.ReplicaSet{old, nw}) {
		t.Fatal("not a scaling event")
	}
	plan := PlanScale(d, nw, []*appsv1.ReplicaSet{old})
	got := map[string]int32{}
	for _, s := range plan {
		got[s.RS.Name] = s.To
	}
	if got["old"]+got["new"] != 23 || got["old"] <= got["new"] {
		t.Fatalf("plan = %v, want 23 in all, old bigger", got)
	}
	// One active ReplicaSet simply takes the new size.
	plan = PlanScale(dep(4, "1", "0"), rs("only", 1, 2, 2), nil)
	if len(plan) != 1 || plan[0].To != 4 {
		t.Fatalf("single: %+v", plan)
	}
}

func TestHistoryToDelete(t *testing.T) {
	d := dep(1, "1", "0")
	one := int32(1)
	d.Spec.RevisionHistoryLimit = &one
	var old []*appsv1.ReplicaSet
	for i, rev := range []string{"3", "1", "2"} {
		r := rs("rs"+rev, int64(i), 0, 0)
		r.Annotations = map[string]string{RevisionAnnotation: rev}
		old = append(old, r)
	}
	old[0].Status.Replicas = 1 // still has pods: kept
	got := HistoryToDelete(d, old)
	if len(got) != 2 || got[0].Name != "rs1" || got[1].Name != "rs2" {
		t.Fatalf("deleted %v", got)
	}
}

func TestRolloutStatusConditions(t *testing.T) {
	now := time.Unix(100000, 0)
	d := dep(2, "1", "0")
	nw := rs("web-abc", 1, 2, 2)
	st := RolloutStatus(d, []*appsv1.ReplicaSet{nw}, nw, now)
	p := GetCondition(st, appsv1.DeploymentProgressing)
	a := GetCondition(st, appsv1.DeploymentAvailable)
	if p == nil || p.Reason != ReasonNewRSAvailable || p.Message != `ReplicaSet "web-abc" has successfully progressed.` ||
		a == nil || a.Status != corev1.ConditionTrue || st.UpdatedReplicas != 2 || st.AvailableReplicas != 2 {
		t.Fatalf("status = %+v", st)
	}
	// Stuck past the deadline: ProgressDeadlineExceeded.
	d.Status = appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 2, Conditions: []appsv1.DeploymentCondition{
		NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, "", now.Add(-601*time.Second))}}
	stuck := rs("web-abc", 1, 2, 0)
	st = RolloutStatus(d, []*appsv1.ReplicaSet{stuck}, stuck, now)
	if p := GetCondition(st, appsv1.DeploymentProgressing); p == nil || p.Reason != ReasonTimedOut || p.Status != corev1.ConditionFalse {
		t.Fatalf("stuck: %+v", st.Conditions)
	}
	if a := GetCondition(st, appsv1.DeploymentAvailable); a.Status != corev1.ConditionFalse || a.Reason != ReasonMinimumUnavailable {
		t.Fatalf("available: %+v", a)
	}
}

func TestComputeHash(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}
	h1, h2 := ComputeHash(tmpl, nil), ComputeHash(tmpl.DeepCopy(), nil)
	one := int32(1)
	if h1 != h2 || h1 == ComputeHash(tmpl, &one) || h1 == "" {
		t.Fatalf("hashes %q %q", h1, h2)
	}
	withHash := tmpl.DeepCopy()
	withHash.Labels[DefaultDeploymentUniqueLabelKey] = h1
	if !EqualIgnoreHash(tmpl, withHash) {
		t.Fatal("EqualIgnoreHash saw the hash label")
	}
	withHash.Spec.Containers[0].Image = "nginx:2"
	if EqualIgnoreHash(tmpl, withHash) {
		t.Fatal("EqualIgnoreHash missed an image change")
	}
}

func TestNewReplicaSetAnnotations(t *testing.T) {
	d := dep(3, "1", "0")
	d.Annotations = map[string]string{"kubernetes.io/change-cause": "v2", lastAppliedAnnotation: "{}"}
	r := rs("x", 1, 0, 0)
	r.Annotations = map[string]string{RevisionAnnotation: "1"}
	if !SetNewReplicaSetAnnotations(d, r, 3, true) {
		t.Fatal("no change reported")
	}
	if r.Annotations[RevisionAnnotation] != "3" || r.Annotations[RevisionHistoryAnnotation] != "1" ||
		r.Annotations["kubernetes.io/change-cause"] != "v2" || r.Annotations[lastAppliedAnnotation] != "" {
		t.Fatalf("annotations = %v", r.Annotations)
	}
}
