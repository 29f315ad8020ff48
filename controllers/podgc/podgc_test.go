package podgc

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(name string, phase corev1.PodPhase, created int64, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Unix(created, 0))},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
}

func TestTerminatedToDelete(t *testing.T) {
	pods := []*corev1.Pod{
		pod("new-done", corev1.PodSucceeded, 30, "n"), pod("old-done", corev1.PodSucceeded, 10, "n"),
		pod("mid-failed", corev1.PodFailed, 20, "n"), pod("running", corev1.PodRunning, 1, "n"),
	}
	got := TerminatedToDelete(pods, 1)
	if len(got) != 2 || got[0].Name != "old-done" || got[1].Name != "mid-failed" {
		t.Fatalf("got %v", got)
	}
	if TerminatedToDelete(pods, 3) != nil {
		t.Fatal("deleted under the threshold")
	}
}

func TestOrphaned(t *testing.T) {
	now := metav1.Now()
	stuck := pod("stuck", corev1.PodPending, 1, "")
	stuck.DeletionTimestamp = &now
	pods := []*corev1.Pod{pod("on-gone", corev1.PodRunning, 1, "gone"), pod("on-live", corev1.PodRunning, 1, "live"),
		pod("pending", corev1.PodPending, 1, ""), stuck}
	got := Orphaned(pods, func(n string) bool { return n == "live" })
	if len(got) != 2 || got[0].Name != "on-gone" || got[1].Name != "stuck" {
		t.Fatalf("got %v", got)
	}
}
