package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestSeccompProfilesFilterSystemCalls runs testimage's keyctl, a system
// call Docker's default profile denies, in real containers under each kind
// of seccompProfile: RuntimeDefault (set on the pod) gets EPERM; the same
// pod with Unconfined on its container (the container's wins), and a pod
// that sets nothing, make the call; a Localhost profile from the agent's
// profile root answers ENOSYS, as the profile says; a Localhost profile
// that is not there leaves the container waiting with CreateContainerError
// naming it.
func TestSeccompProfilesFilterSystemCalls(t *testing.T) {
	profiles := t.TempDir()
	deny := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}`
	if err := os.WriteFile(filepath.Join(profiles, "deny-keyctl.json"), []byte(deny), 0o644); err != nil {
		t.Fatal(err)
	}
	localhost := func(name string) *corev1.SeccompProfile {
		return &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: &name}
	}
	runtimeDefault := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	unconfined := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
	keyctlPod := func(name string, podProfile, ctrProfile *corev1.SeccompProfile) *corev1.Pod {
		p := uniquePod(name, ctr("main", "keyctl"))
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		if podProfile != nil {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: podProfile}
		}
		if ctrProfile != nil {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{SeccompProfile: ctrProfile}
		}
		return p
	}
	want := map[string]string{
		"sc-default":    "keyctl: EPERM\n",
		"sc-unconfined": "keyctl: ok\n",
		"sc-unset":      "keyctl: ok\n",
		"sc-localhost":  "keyctl: ENOSYS\n",
	}
	client := fake.NewSimpleClientset(
		keyctlPod("sc-default", runtimeDefault, nil),
		keyctlPod("sc-unconfined", runtimeDefault, unconfined),
		keyctlPod("sc-unset", nil, nil),
		keyctlPod("sc-localhost", nil, localhost("deny-keyctl.json")),
		keyctlPod("sc-missing", localhost("missing.json"), nil),
	)
	a := startRealAgent(t, client, func(c *Config) { c.SeccompProfileRoot = profiles })
	for name, out := range want {
		waitPod(t, client, name, 30*time.Second, phaseIs(corev1.PodSucceeded))
		eventually(t, 10*time.Second, name+" output", func() (bool, string) {
			code, body := a.endpointGet(t, "/containerLogs/default/"+name+"/main")
			return code == 200 && body == out, fmt.Sprintf("%d %q, want %q", code, body, out)
		})
	}
	waitPod(t, client, "sc-missing", 30*time.Second, func(p *corev1.Pod) (bool, string) {
		if len(p.Status.ContainerStatuses) == 0 {
			return false, "no container status"
		}
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w != nil && w.Reason == "CreateContainerError" && strings.Contains(w.Message, `"missing.json"`),
			fmt.Sprintf("%+v", p.Status.ContainerStatuses[0].State)
	})
}
