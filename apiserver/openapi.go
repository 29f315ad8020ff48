package apiserver

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// openAPI serves /openapi/v3 (one document per group-version, what kubectl's explain and
// its fieldValidation check read) and /openapi/v2 (JSON, or protobuf as client-go asks).
// The documents are built on first use and never change.
type openAPI struct {
	s    *Server
	once sync.Once
	v3   map[string][]byte // "api/v1", "apis/apps/v1" -> document
	hash map[string]string
	v2   []byte
	v2pb []byte
	err  error
}

func newOpenAPI(s *Server) (*openAPI, error) { return &openAPI{s: s}, nil }

func (o *openAPI) build() {
	o.v3, o.hash = map[string][]byte{}, map[string]string{}
	gvks := map[reflect.Type][]schema.GroupVersionKind{}
	for gvk, t := range o.s.codecs.scheme.AllKnownTypes() {
		if gvk.Version != "__internal" {
			gvks[t] = append(gvks[t], gvk)
		}
	}
	v2b := &schemaBuilder{refPrefix: "#/definitions/", defs: map[string]map[string]any{}, gvks: gvks}
	v2paths := map[string]any{}
	for _, g := range o.s.reg.groups {
		for _, v := range o.s.reg.versions[g] {
			b := &schemaBuilder{refPrefix: "#/components/schemas/", v3: true, defs: map[string]map[string]any{}, gvks: gvks}
			paths := map[string]any{}
			for _, rs := range o.s.reg.inVersion(g, v) {
				o.addPaths(paths, b, rs, true)
				o.addPaths(v2paths, v2b, rs, false)
			}
			doc := map[string]any{
				"openapi": "3.0.0", "info": map[string]any{"title": "Kubernetes", "version": "v1.32.0"},
				"paths": paths, "components": map[string]any{"schemas": b.defs},
			}
			data, err := json.Marshal(doc)
			if err != nil {
				o.err = err
				return
			}
			key := "apis/" + g + "/" + v
			if g == "" {
				key = "api/" + v
			}
			sum := sha512.Sum512(data)
			o.v3[key], o.hash[key] = data, strings.ToUpper(hex.EncodeToString(sum[:]))[:64]
		}
	}
	doc := map[string]any{"swagger": "2.0", "info": map[string]any{"title": "Kubernetes", "version": "v1.32.0"},
		"paths": v2paths, "definitions": v2b.defs}
	if o.v2, o.err = json.Marshal(doc); o.err != nil {
		return
	}
	d, err := openapi_v2.ParseDocument(o.v2)
	if err != nil {
		o.err = err
		return
	}
	o.v2pb, o.err = proto.Marshal(d)
}

// addPaths adds a resource's operations; PATCH lists fieldValidation so that kubectl
// leaves validation to the server.
func (o *openAPI) addPaths(paths map[string]any, b *schemaBuilder, rs *Resource, v3 bool) {
	base := "/api/" + rs.GVR.Version
	if rs.GVR.Group != "" {
		base = "/apis/" + rs.GVR.Group + "/" + rs.GVR.Version
	}
	coll := base + "/" + rs.GVR.Resource
	if rs.Namespaced {
		coll = base + "/namespaces/{namespace}/" + rs.GVR.Resource
	}
	obj := b.ref(reflect.TypeOf(rs.newObject(o.s.codecs)).Elem())
	b.ref(reflect.TypeOf(metav1.Status{}))
	gvk := map[string]string{"group": rs.GVR.Group, "version": rs.GVR.Version, "kind": rs.Kind}
	op := func(action, id string, ref map[string]any, params ...string) map[string]any {
		m := map[string]any{"operationId": id + rs.Kind, "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}
		resp := map[string]any{"description": "OK"}
		if v3 {
			resp["content"] = map[string]any{"application/json": map[string]any{"schema": ref}}
		} else {
			resp["schema"] = ref
		}
		m["responses"] = map[string]any{"200": resp}
		var ps []any
		for _, p := range params {
			if v3 {
				ps = append(ps, map[string]any{"name": p, "in": "query", "schema": map[string]any{"type": "string", "uniqueItems": true}})
			} else {
				ps = append(ps, map[string]any{"name": p, "in": "query", "type": "string", "uniqueItems": true})
			}
		}
		if ps != nil {
			m["parameters"] = ps
		}
		return m
	}
	write := []string{"dryRun", "fieldManager", "fieldValidation"}
	if rs.Serve != nil {
		// Computed, create-only kinds (access reviews) have no list type and no items.
		paths[base+"/"+rs.GVR.Resource] = map[string]any{"post": op("post", "create", obj, write...)}
		return
	}
	listObj, err := o.s.codecs.scheme.New(rs.GVR.GroupVersion().WithKind(rs.Kind + "List"))
	if err != nil {
		return
	}
	list := b.ref(reflect.TypeOf(listObj).Elem())
	paths[coll] = map[string]any{
		"get":  op("list", "list", list, "labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"),
		"post": op("post", "create", obj, write...),
	}
	item := map[string]any{
		"get":    op("get", "read", obj),
		"put":    op("put", "replace", obj, write...),
		"patch":  op("patch", "patch", obj, append(write, "force")...),
		"delete": op("delete", "delete", b.ref(reflect.TypeOf(metav1.Status{}))),
	}
	paths[coll+"/{name}"] = item
	if rs.Status {
		paths[coll+"/{name}/status"] = map[string]any{
			"get": op("get", "readStatus", obj), "put": op("put", "replaceStatus", obj, write...),
			"patch": op("patch", "patchStatus", obj, append(write, "force")...),
		}
	}
}

func (o *openAPI) ready(w http.ResponseWriter) bool {
	o.once.Do(o.build)
	if o.err != nil {
		writeError(w, o.err, groupResourceNone, "")
		return false
	}
	return true
}

func (o *openAPI) serveV3Root(w http.ResponseWriter, r *http.Request) {
	if !o.ready(w) {
		return
	}
	paths := map[string]any{}
	for k := range o.v3 {
		paths[k] = map[string]string{"serverRelativeURL": "/openapi/v3/" + k + "?hash=" + o.hash[k]}
	}
	writeJSON(w, 200, "application/json", map[string]any{"paths": paths})
}

func (o *openAPI) serveV3(w http.ResponseWriter, r *http.Request) {
	if !o.ready(w) {
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/openapi/v3/")
	doc, ok := o.v3[key]
	if !ok {
		writeError(w, errNotFoundPath(r), groupResourceNone, "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Etag", `"`+o.hash[key]+`"`)
	_, _ = w.Write(doc)
}

func (o *openAPI) serveV2(w http.ResponseWriter, r *http.Request) {
	if !o.ready(w) {
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "protobuf") {
		w.Header().Set("Content-Type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
		_, _ = w.Write(o.v2pb)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(o.v2)
}
