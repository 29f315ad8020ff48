package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/apitest"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

var configmapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// TestMetadataClientGetListWatch: client-go's metadata client (protobuf first in its
// Accept) gets, lists (with selectors and pages) and watches objects as
// PartialObjectMetadata carrying the object's whole ObjectMeta, through another node.
func TestMetadataClientGetListWatch(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	writer := c.Client(0)
	mc, err := metadata.NewForConfig(c.RESTConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	cms := mc.Resource(configmapsGVR).Namespace("default")
	for i := 0; i < 5; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("m-%d", i),
			Labels: map[string]string{"i": fmt.Sprint(i), "odd": fmt.Sprint(i%2 == 1)}, Annotations: map[string]string{"a": "b"},
			Finalizers:      []string{"example.com/keep"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u-1"}}},
			Data: map[string]string{"big": strings.Repeat("x", 1000)}}
		if _, err := writer.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	full, err := writer.CoreV1().ConfigMaps("default").Get(ctx, "m-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cms.Get(ctx, "m-1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("metadata get: %v", err)
	}
	if !apiequality.Semantic.DeepEqual(got.ObjectMeta, full.ObjectMeta) {
		t.Fatalf("metadata get:\n%+v\nwant the object's ObjectMeta\n%+v", got.ObjectMeta, full.ObjectMeta)
	}
	if _, err := cms.Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("metadata get of a missing object: want 404, got %v", err)
	}

	fullList, err := writer.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{LabelSelector: "i"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "i"})
	if err != nil {
		t.Fatalf("metadata list: %v", err)
	}
	if len(list.Items) != 5 || list.ResourceVersion == "" {
		t.Fatalf("metadata list: %d items at %q", len(list.Items), list.ResourceVersion)
	}
	for i := range list.Items {
		if !apiequality.Semantic.DeepEqual(list.Items[i].ObjectMeta, fullList.Items[i].ObjectMeta) {
			t.Fatalf("metadata list item %d:\n%+v\nwant\n%+v", i, list.Items[i].ObjectMeta, fullList.Items[i].ObjectMeta)
		}
	}
	odd, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "odd=true", FieldSelector: "metadata.name!=m-3"})
	if err != nil || len(odd.Items) != 1 || odd.Items[0].Name != "m-1" {
		t.Fatalf("metadata list with label and field selectors: %v %v", odd, err)
	}
	// Pages without selectors are assembled from the stored bytes.
	var names []string
	opts := metav1.ListOptions{Limit: 2}
	for {
		page, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatalf("metadata list page: %v", err)
		}
		for _, it := range page.Items {
			if strings.HasPrefix(it.Name, "m-") {
				names = append(names, it.Name+"@"+it.ResourceVersion)
			}
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	var want []string
	for _, it := range fullList.Items {
		want = append(want, it.Name+"@"+it.ResourceVersion)
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("metadata list by pages: %v, want %v", names, want)
	}

	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatalf("metadata watch: %v", err)
	}
	defer w.Stop()
	if _, err := writer.CoreV1().ConfigMaps("default").Patch(ctx, "m-2", types.MergePatchType, []byte(`{"metadata":{"labels":{"new":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := writer.CoreV1().ConfigMaps("default").Delete(ctx, "m-4", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	patched, err := mc.Resource(configmapsGVR).Namespace("default").Patch(ctx, "m-4", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	if err != nil || len(patched.Finalizers) != 0 {
		t.Fatalf("metadata patch: %v %v", patched, err)
	}
	var events []string
	for len(events) == 0 || !strings.HasPrefix(events[len(events)-1], "DELETED") {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch ended after %v", events)
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			p, ok := ev.Object.(*metav1.PartialObjectMetadata)
			if !ok {
				t.Fatalf("watch event %s: %T, want *PartialObjectMetadata", ev.Type, ev.Object)
			}
			events = append(events, fmt.Sprintf("%s %s new=%s del=%v", ev.Type, p.Name, p.Labels["new"], p.DeletionTimestamp != nil))
		case <-ctx.Done():
			t.Fatalf("watch events so far: %v", events)
		}
	}
	got2 := strings.Join(events, ",")
	if !strings.HasPrefix(got2, "MODIFIED m-2 new=yes del=false,MODIFIED m-4 new= del=true,") || !strings.HasSuffix(got2, ",DELETED m-4 new= del=true") {
		t.Fatalf("watch events: %v", got2)
	}
}

// TestMetadataInformerSyncsAndFollows: a metadatainformer (watch-list or list+watch, as
// client-go chooses) syncs the objects' metadata and follows creates, updates and deletes
// written through another node.
func TestMetadataInformerSyncsAndFollows(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	writer := c.Client(0)
	for i := 0; i < 3; i++ {
		if _, err := writer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pre-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mc, err := metadata.NewForConfig(c.RESTConfig(2))
	if err != nil {
		t.Fatal(err)
	}
	f := metadatainformer.NewFilteredSharedInformerFactory(mc, 0, "default", nil)
	inf := f.ForResource(configmapsGVR)
	f.Start(ctx.Done())
	defer func() { cancel(); f.Shutdown() }()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		t.Fatal("metadata informer never synced")
	}
	state := func() string {
		var out []string
		for _, o := range inf.Informer().GetStore().List() {
			p, ok := o.(*metav1.PartialObjectMetadata)
			if !ok {
				return fmt.Sprintf("cache holds %T", o)
			}
			out = append(out, p.Name+":"+p.Labels["v"])
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	if got := state(); !strings.HasPrefix(got, "pre-0:,pre-1:,pre-2:") {
		t.Fatalf("synced cache: %s", got)
	}
	if _, err := writer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := writer.CoreV1().ConfigMaps("default").Delete(ctx, "pre-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.CoreV1().ConfigMaps("default").Patch(ctx, "pre-1", types.MergePatchType, []byte(`{"metadata":{"labels":{"v":"2"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	rafttest.Eventually(t, 20*time.Second, func() error {
		if got := state(); !strings.HasPrefix(got, "kube-root-ca.crt:,new:,pre-1:2,pre-2:") && got != "new:,pre-1:2,pre-2:" {
			return fmt.Errorf("cache: %s", got)
		}
		return nil
	})
}

// TestPartialObjectMetadataNegotiation: what each Accept header gets, as kube-apiserver
// v1.32 answers it (checked against the reference control plane): the first acceptable
// clause wins, an unknown conversion is skipped, a conversion that does not fit the
// request is 406, and a 406 changes nothing.
func TestPartialObjectMetadataNegotiation(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := c.Client(0)
	if _, err := cl.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c1", Labels: map[string]string{"k": "v"}}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const (
		pom  = "as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
		poml = "as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
		tbl  = "as=Table;g=meta.k8s.io;v=v1"
		js   = "application/json"
		pb   = "application/vnd.kubernetes.protobuf"
	)
	obj, objs := "/api/v1/namespaces/default/configmaps/c1", "/api/v1/namespaces/default/configmaps"
	cases := []struct {
		method, path, accept string
		code                 int
		want                 string // JSON: "apiVersion kind", or the 406 message's start; protobuf: the content type
	}{
		{"GET", obj, js + ";" + pom, 200, "meta.k8s.io/v1 PartialObjectMetadata"},
		{"GET", obj, js + ";as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1", 200, "meta.k8s.io/v1beta1 PartialObjectMetadata"},
		{"GET", obj, "application/yaml;" + pom, 200, "application/yaml"},
		{"GET", obj, pb + ";" + pom, 200, pb},
		{"GET", obj, js + ";" + poml, 406, "you requested PartialObjectMetadataList, but the requested object is not a list"},
		{"GET", obj, js + ";as=Foo;g=meta.k8s.io;v=v1", 406, "only the following media types are accepted"},
		{"GET", obj, js + ";as=PartialObjectMetadata", 406, "only the following media types are accepted"},
		{"GET", obj, js + ";as=PartialObjectMetadata;g=meta.k8s.io;v=v2", 406, "only the following media types are accepted"},
		{"GET", obj, js + ";as=Foo;g=meta.k8s.io;v=v1," + js, 200, "v1 ConfigMap"},
		{"GET", obj, pb + ";" + tbl, 406, "only the following media types are accepted"},
		{"GET", obj, pb + ";" + tbl + "," + js + ";" + pom, 200, "meta.k8s.io/v1 PartialObjectMetadata"},
		{"GET", obj, js + ";" + tbl, 200, "meta.k8s.io/v1 Table"},
		{"GET", objs, js + ";" + poml, 200, "meta.k8s.io/v1 PartialObjectMetadataList"},
		{"GET", objs + "?labelSelector=k%3Dv", js + ";as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1", 200, "meta.k8s.io/v1beta1 PartialObjectMetadataList"},
		{"GET", objs, pb + ";" + poml, 200, pb},
		{"GET", objs, js + ";" + pom, 406, "you requested PartialObjectMetadata, but the requested object is a list"},
		{"GET", objs, pb + ";" + pom + "," + js + ";" + poml, 406, "you requested PartialObjectMetadata, but the requested object is a list"},
		{"GET", objs + "?watch=1", js + ";" + poml, 406, "you requested PartialObjectMetadataList"},
		{"GET", objs + "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", js + ";" + tbl, 406, "only the following media types are accepted"},
		{"POST", objs, js + ";as=Foo;g=meta.k8s.io;v=v1", 406, "only the following media types are accepted"},
		{"POST", objs, js + ";" + pom, 201, "meta.k8s.io/v1 PartialObjectMetadata"},
	}
	for _, tc := range cases {
		req := cl.CoreV1().RESTClient().Verb(tc.method).AbsPath(strings.Split(tc.path, "?")[0]).SetHeader("Accept", tc.accept)
		if strings.Contains(tc.path, "?") {
			for _, kv := range strings.Split(strings.Split(tc.path, "?")[1], "&") {
				k, v, _ := strings.Cut(kv, "=")
				req.Param(k, strings.ReplaceAll(v, "%3D", "="))
			}
			req.Param("timeoutSeconds", "1")
		}
		if tc.method == "POST" {
			req.SetHeader("Content-Type", js).Body([]byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"post-%d"}}`, tc.code)))
		}
		res := req.Do(ctx)
		var code int
		res.StatusCode(&code)
		body, _ := res.Raw()
		if code != tc.code {
			t.Errorf("%s %s Accept %s: %d, want %d: %.300s", tc.method, tc.path, tc.accept, code, tc.code, body)
			continue
		}
		var ct string
		res.ContentType(&ct)
		switch {
		case strings.HasPrefix(tc.want, "application/"):
			if !strings.HasPrefix(ct, tc.want) {
				t.Errorf("%s %s Accept %s: content type %s, want %s", tc.method, tc.path, tc.accept, ct, tc.want)
			}
		case code == 406:
			var s metav1.Status
			if err := json.Unmarshal(body, &s); err != nil || s.Reason != metav1.StatusReasonNotAcceptable || !strings.HasPrefix(s.Message, tc.want) {
				t.Errorf("%s %s Accept %s: status %+v (%v), want NotAcceptable %q", tc.method, tc.path, tc.accept, s, err, tc.want)
			}
		default:
			var tm metav1.TypeMeta
			if err := json.Unmarshal(body, &tm); err != nil || tm.APIVersion+" "+tm.Kind != tc.want {
				t.Errorf("%s %s Accept %s: %s %s (%v), want %s", tc.method, tc.path, tc.accept, tm.APIVersion, tm.Kind, err, tc.want)
			}
		}
	}
	if _, err := cl.CoreV1().ConfigMaps("default").Get(ctx, "post-406", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a create answered 406 must change nothing: %v", err)
	}
}
