package apiserver_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// FuzzRequestDecoding sends arbitrary bodies as every content type and patch type to a
// real server: nothing may panic or answer 5xx.
func FuzzRequestDecoding(f *testing.F) {
	c := apitest.Start(f, 1, apitest.Options{Tokens: map[string]apiserver.UserInfo{"fuzz": {Name: "fuzz", Groups: []string{"system:masters"}}}})
	h := c.Servers[0].Handler()
	for _, seed := range []string{
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}`,
		`[{"op":"add","path":"/data/x","value":"1"}]`, `{"data":null}`, `{"metadata":{"finalizers":["x"]}}`,
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: existing\n", "\x00\x01k8s\x00", `{`, ``,
	} {
		for i := 0; i < 8; i++ {
			f.Add([]byte(seed), uint8(i))
		}
	}
	types := []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
		"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json",
		"application/apply-patch+yaml", "text/plain"}
	f.Fuzz(func(t *testing.T, body []byte, kind uint8) {
		ct := types[int(kind)%len(types)]
		method, path := http.MethodPost, "/api/v1/namespaces/default/configmaps"
		if kind%8 >= 3 {
			method, path = http.MethodPatch, path+"/existing?fieldManager=fuzz"
		}
		if kind >= 128 {
			method, path = http.MethodPut, "/api/v1/namespaces/default/configmaps/existing"
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer fuzz")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s (%s) answered %d: %s", method, path, ct, rec.Code, rec.Body.String())
		}
	})
}
