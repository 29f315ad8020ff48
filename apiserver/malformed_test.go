package apiserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestMalformedRequestsGetStatusAndChangeNothing sends bad requests of every kind, checks
// each Kubernetes Status code, and that the store's revision did not move.
func TestMalformedRequestsGetStatusAndChangeNothing(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "existing", Namespace: "default"}}
	cm, err := c.Client(0).CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	staleRV := cm.ResourceVersion
	cm.Data = map[string]string{"x": "y"}
	if _, err := c.Client(0).CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	client := func(cert *apitest.Cert) *http.Client {
		cfg := &tls.Config{RootCAs: c.PKI.Pool}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{cert.TLS}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	admin, anon := client(c.Admin), client(nil)
	bob := client(c.PKI.ClientCert(t, "bob"))
	node := client(c.PKI.ClientCert(t, "system:node:n1", "system:nodes"))
	big := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"` + strings.Repeat("x", 3<<20+10) + `"}}`
	cmURL := "/api/v1/namespaces/default/configmaps"
	cases := []struct {
		name, method, path, ctype, body string
		as                              *http.Client
		code                            int
	}{
		{"broken JSON", "POST", cmURL, "application/json", `{"kind":`, admin, 400},
		{"unknown content type", "POST", cmURL, "text/plain", `hello`, admin, 415},
		{"body over 3 MiB", "POST", cmURL, "application/json", big, admin, 413},
		{"invalid name", "POST", cmURL, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}`, admin, 422},
		{"missing name", "POST", cmURL, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}`, admin, 422},
		{"wrong kind", "POST", cmURL, "application/json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}`, admin, 400},
		{"namespace mismatch", "POST", cmURL, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"other"}}`, admin, 400},
		{"duplicate", "POST", cmURL, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"existing"}}`, admin, 409},
		{"missing namespace", "POST", "/api/v1/namespaces/nope/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}`, admin, 404},
		{"stale update", "PUT", cmURL + "/existing", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"existing","resourceVersion":"` + staleRV + `"},"data":{"z":"1"}}`, admin, 409},
		{"name mismatch on update", "PUT", cmURL + "/existing", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}`, admin, 400},
		{"update of a missing object", "PUT", cmURL + "/missing", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"missing"}}`, admin, 404},
		{"get missing", "GET", cmURL + "/missing", "", "", admin, 404},
		{"delete missing", "DELETE", cmURL + "/missing", "", "", admin, 404},
		{"unknown resource", "GET", "/api/v1/widgets", "", "", admin, 404},
		{"unknown patch type", "PATCH", cmURL + "/existing", "application/xml", `<x/>`, admin, 415},
		{"broken JSON patch", "PATCH", cmURL + "/existing", "application/json-patch+json", `[{"op":"explode"}]`, admin, 422},
		{"JSON patch of a missing path", "PATCH", cmURL + "/existing", "application/json-patch+json", `[{"op":"replace","path":"/nope/x","value":1}]`, admin, 422},
		{"broken merge patch", "PATCH", cmURL + "/existing", "application/merge-patch+json", `{`, admin, 400},
		{"patch naming another uid", "PATCH", cmURL + "/existing", "application/merge-patch+json", `{"metadata":{"uid":"6a3c1f3e-0000-4000-8000-000000000000"},"data":{"u":"1"}}`, admin, 422},
		{"update naming another uid", "PUT", cmURL + "/existing", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"existing","uid":"6a3c1f3e-0000-4000-8000-000000000000"},"data":{"u":"1"}}`, admin, 409},
		{"patch changing the name", "PATCH", cmURL + "/existing", "application/merge-patch+json", `{"metadata":{"name":"x"}}`, admin, 400},
		{"stale resourceVersion in a patch", "PATCH", cmURL + "/existing", "application/merge-patch+json", `{"metadata":{"resourceVersion":"` + staleRV + `"},"data":{"q":"1"}}`, admin, 409},
		{"apply without fieldManager", "PATCH", cmURL + "/existing", "application/apply-patch+yaml", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"existing"}}`, admin, 422},
		{"unknown field with Strict", "POST", cmURL + "?fieldValidation=Strict", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s"},"bogus":1}`, admin, 400},
		{"bad label selector", "GET", cmURL + "?labelSelector=a%3D%3D%3Db", "", "", admin, 400},
		{"unsupported field selector", "GET", cmURL + "?fieldSelector=spec.nope%3D1", "", "", admin, 400},
		{"bad resourceVersion", "GET", cmURL + "?resourceVersion=abc", "", "", admin, 400},
		{"bad dryRun", "POST", cmURL + "?dryRun=Some", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"}}`, admin, 400},
		{"anonymous", "GET", cmURL, "", "", anon, 401},
		{"no RBAC rights", "GET", cmURL, "", "", bob, 403},
		{"no RBAC rights to create", "POST", cmURL, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}`, bob, 403},
		{"node changing another node", "PUT", "/api/v1/nodes/n2", "application/json", `{"apiVersion":"v1","kind":"Node","metadata":{"name":"n2"}}`, node, 403},
		{"node creating another node", "POST", "/api/v1/nodes", "application/json", `{"apiVersion":"v1","kind":"Node","metadata":{"name":"n2"}}`, node, 403},
		{"node writing a configmap", "POST", cmURL, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n"}}`, node, 403},
	}
	store := c.Raft.Nodes[0].Store()
	// The replica may not have applied the set-up's last write yet: read both revisions
	// after a barrier, or the catching up looks like a write made by a bad request.
	barrier := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := store.ReadBarrier(ctx); err != nil {
			t.Fatal(err)
		}
	}
	barrier()
	before := store.Revision()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, c.URLs[0]+tc.path, bytes.NewReader([]byte(tc.body)))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := tc.as.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tc.code, data)
			}
			var st metav1.Status
			if err := json.Unmarshal(data, &st); err != nil || st.Kind != "Status" || int(st.Code) != tc.code {
				t.Fatalf("body is not a Status with code %d: %s", tc.code, data)
			}
		})
	}
	barrier()
	if after := store.Revision(); after != before {
		t.Fatalf("the store changed: revision %d -> %d", before, after)
	}
}
