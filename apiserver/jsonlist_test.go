package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestJSONListsAreWrittenAsTheirEncoding: JSON lists are written item by item; the body
// must be exactly the JSON encoding of the List it holds (envelope, commas, metadata,
// "items":[] when empty), with selectors and pages as for any list.
func TestJSONListsAreWrittenAsTheirEncoding(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 5; i++ {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Labels: map[string]string{"i": fmt.Sprint(i % 2)},
			Annotations: map[string]string{"html": "<a&b>"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
		if i < 3 {
			p.Spec.NodeName = "n1"
		}
		if _, err := c.Client(0).CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rest := c.Client(0).CoreV1().RESTClient()
	for _, tc := range []struct {
		params map[string]string
		names  []string
	}{
		{nil, []string{"p0", "p1", "p2", "p3", "p4"}},
		{map[string]string{"labelSelector": "i=1"}, []string{"p1", "p3"}},
		{map[string]string{"fieldSelector": "spec.nodeName!="}, []string{"p0", "p1", "p2"}},
		{map[string]string{"fieldSelector": "spec.nodeName!=", "limit": "2"}, []string{"p0", "p1"}},
		{map[string]string{"labelSelector": "i=7"}, nil},
	} {
		req := rest.Get().AbsPath("/api/v1/namespaces/default/pods").SetHeader("Accept", "application/json")
		for k, v := range tc.params {
			req = req.Param(k, v)
		}
		body, err := req.DoRaw(ctx)
		if err != nil {
			t.Fatalf("%v: %v", tc.params, err)
		}
		var list corev1.PodList
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatalf("%v: not JSON: %v\n%s", tc.params, err, body)
		}
		var names []string
		for _, p := range list.Items {
			names = append(names, p.Name)
		}
		if fmt.Sprint(names) != fmt.Sprint(tc.names) || list.Kind != "PodList" || list.APIVersion != "v1" || list.ResourceVersion == "" {
			t.Errorf("%v: %s %s rv %q items %v, want items %v", tc.params, list.APIVersion, list.Kind, list.ResourceVersion, names, tc.names)
		}
		// As kube-apiserver: a selected page has a continue token but no remainingItemCount.
		if tc.params["limit"] != "" && (list.Continue == "" || list.RemainingItemCount != nil) {
			t.Errorf("%v: continue %q remaining %v, want a continue token and no count", tc.params, list.Continue, list.RemainingItemCount)
		}
		var enc bytes.Buffer
		if err := json.NewEncoder(&enc).Encode(&list); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, enc.Bytes()) {
			t.Errorf("%v: body is not the list's encoding:\n%s\nwant\n%s", tc.params, body, enc.Bytes())
		}
		if tc.names == nil && !bytes.Contains(body, []byte(`"items":[]`)) {
			t.Errorf("empty list without \"items\":[]: %s", body)
		}
	}
}
