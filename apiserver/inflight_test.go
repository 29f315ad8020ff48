package apiserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestWritesOverTheInflightLimitWaitThenGet429: with one mutating request allowed in
// flight, a second write of an ordinary user waits for the first, and gets 429 Too Many
// Requests with Retry-After when it waits longer than a quarter of the request timeout;
// a member of system:masters is not held back, and once the first write ends the next
// one goes through.
func TestWritesOverTheInflightLimitWaitThenGet429(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{RequestTimeout: 4 * time.Second, MaxMutatingRequestsInflight: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := c.Client(0)
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "alice"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(c.RESTConfigFor(0, c.PKI.ClientCert(t, "alice")))
	if err != nil {
		t.Fatal(err)
	}
	url := c.URLs[0] + "/api/v1/namespaces/default/configmaps"
	post := func(body io.Reader) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		return hc.Do(req)
	}
	cm := func(name string) string {
		return `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + name + `"}}`
	}

	// The first write holds the only slot while its body is still coming.
	pr, pw := io.Pipe()
	first := make(chan *http.Response, 1)
	go func() {
		resp, err := post(pr)
		if err != nil {
			t.Error(err)
		}
		first <- resp
	}()
	body := cm("first")
	if _, err := pw.Write([]byte(body[:10])); err != nil {
		t.Fatal(err)
	}
	// The bytes leaving the client do not mean the server has taken the slot yet: wait
	// until its gauge says so, or the second write could take it first.
	for mutatingInflight(ctx, t, admin.RESTClient()) != 1 {
		time.Sleep(10 * time.Millisecond)
	}

	start := time.Now()
	resp, err := post(strings.NewReader(cm("second")))
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	var st metav1.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || st.Reason != metav1.StatusReasonTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second write while the first is in flight: %d %s %q (Retry-After %q), want 429 TooManyRequests with Retry-After",
			resp.StatusCode, st.Reason, st.Message, resp.Header.Get("Retry-After"))
	}
	if waited < 900*time.Millisecond {
		t.Errorf("the second write was refused after %v, before waiting a quarter of the 4 s request timeout", waited)
	}

	// system:masters is exempt.
	if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "admin"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin's write while the slot is taken: %v", err)
	}

	if _, err := pw.Write([]byte(body[10:])); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if resp := <-first; resp == nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("first write: %v", resp)
	}
	resp, err = post(strings.NewReader(cm("third")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a write after the first ended: %d, want 201", resp.StatusCode)
	}
	if _, err := admin.CoreV1().ConfigMaps("default").Get(ctx, "second", metav1.GetOptions{}); err == nil {
		t.Error("the refused write was stored")
	}
}

// mutatingInflight reads the server's apiserver_current_inflight_requests gauge of writes.
func mutatingInflight(ctx context.Context, t *testing.T, rc rest.Interface) int {
	t.Helper()
	raw, err := rc.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const series = `apiserver_current_inflight_requests{request_kind="mutating"} `
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("%s%s: %v", series, v, err)
			}
			return n
		}
	}
	return 0
}
