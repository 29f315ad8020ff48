package apiserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestRequestTimeoutEndsWith504: a request that is not long-running gets at most its
// ?timeout= (as kube-apiserver), and one the store cannot answer in time ends with a 504
// Timeout Status rather than holding the client.
func TestRequestTimeoutEndsWith504(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	rc := c.RESTConfig(0)
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	get := func(q string) (int, metav1.Status) {
		resp, err := hc.Get(rc.Host + "/api/v1/namespaces/default/configmaps" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var st metav1.Status
		_ = json.Unmarshal(b, &st)
		return resp.StatusCode, st
	}
	if code, _ := get("?timeout=30s"); code != http.StatusOK {
		t.Fatalf("list with a 30s timeout: %d", code)
	}
	code, st := get("?timeout=1ns")
	if code != http.StatusGatewayTimeout || st.Reason != metav1.StatusReasonTimeout {
		t.Fatalf("list with a 1ns timeout: %d %+v, want 504 Timeout", code, st)
	}
	// A watch is long-running: the timeout parameter does not cut it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", rc.Host+"/api/v1/namespaces/default/configmaps?watch=1&timeout=1ns", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch with timeout=1ns: %d, want 200", resp.StatusCode)
	}
}
