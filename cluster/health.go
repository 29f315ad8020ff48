package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// waitReady waits until every server answers /readyz (which needs a leader).
func waitReady(ctx context.Context, lc *LocalCluster, keys *Keys, say func(string, ...any)) error {
	for _, p := range lc.Processes {
		if p.Role != "server" {
			continue
		}
		rc, err := RestConfig(lc.Kubeconfig, p.Name)
		if err != nil {
			return err
		}
		hc, err := rest.HTTPClientFor(rc)
		if err != nil {
			return err
		}
		for {
			body, err := getBody(ctx, hc, p.APIURL+"/readyz")
			if err == nil {
				say("server %s is ready", p.Name)
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("server %s not ready (see %s): %v", p.Name, p.LogFile, firstNonEmpty(body, err.Error()))
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	return nil
}

func getBody(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}

// waitNodesReady waits until every agent's Node reports Ready.
func waitNodesReady(ctx context.Context, lc *LocalCluster, keys *Keys, say func(string, ...any)) error {
	var agents []Process
	for _, p := range lc.Processes {
		if p.Role == "agent" {
			agents = append(agents, p)
		}
	}
	if len(agents) == 0 {
		return nil
	}
	rc, err := RestConfig(lc.Kubeconfig, "")
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	say("waiting for %d node(s) to become Ready...", len(agents))
	for _, a := range agents {
		for {
			n, err := cs.CoreV1().Nodes().Get(ctx, a.Name, metav1.GetOptions{})
			if err == nil && nodeReady(n) {
				say("node %s is Ready", a.Name)
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("node %s not Ready (see %s): %v", a.Name, a.LogFile, err)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
