package apiserver

import (
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// schemaBuilder turns k8s.io/api Go types into OpenAPI schemas by reflection: json tags
// give the property names, the generated SwaggerDoc methods the descriptions, the
// OpenAPIModelName methods the component names, and the patch struct tags the
// x-kubernetes-patch-* extensions. This avoids k8s.io/kube-openapi's generated
// definitions (megabytes of code) for the same result on the kinds skiff serves.
type schemaBuilder struct {
	refPrefix string // "#/components/schemas/" (v3) or "#/definitions/" (v2)
	v3        bool
	defs      map[string]map[string]any
	gvks      map[reflect.Type][]schema.GroupVersionKind
}

type modelNamer interface{ OpenAPIModelName() string }
type swaggerDoc interface{ SwaggerDoc() map[string]string }
type schemaTyper interface{ OpenAPISchemaType() []string }
type schemaFormatter interface{ OpenAPISchemaFormat() string }

func modelName(t reflect.Type) string {
	if v, ok := reflect.New(t).Interface().(modelNamer); ok {
		return v.OpenAPIModelName()
	}
	// k8s.io/api/core/v1.Pod -> io.k8s.api.core.v1.Pod
	p := t.PkgPath()
	if host, rest, ok := strings.Cut(p, "/"); ok {
		parts := strings.Split(host, ".")
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
		p = strings.Join(parts, ".") + "." + strings.ReplaceAll(rest, "/", ".")
	}
	return p + "." + t.Name()
}

// ref returns the schema of a named type, defining it on first use.
func (b *schemaBuilder) ref(t reflect.Type) map[string]any {
	name := modelName(t)
	if _, ok := b.defs[name]; !ok {
		b.defs[name] = nil // placeholder against recursion (JSONSchemaProps-like types)
		b.defs[name] = b.define(t)
	}
	return map[string]any{"$ref": b.refPrefix + name}
}

func (b *schemaBuilder) define(t reflect.Type) map[string]any {
	inst := reflect.New(t).Interface()
	if st, ok := inst.(schemaTyper); ok {
		s := map[string]any{"type": st.OpenAPISchemaType()[0]}
		if f, ok := inst.(schemaFormatter); ok && f.OpenAPISchemaFormat() != "" {
			s["format"] = f.OpenAPISchemaFormat()
		}
		if s["format"] == "int-or-string" {
			s["x-kubernetes-int-or-string"] = true
		}
		return s
	}
	if t.Kind() != reflect.Struct {
		return b.inline(t)
	}
	if t.Name() == "RawExtension" || t.Name() == "FieldsV1" {
		return map[string]any{"type": "object"}
	}
	docs := map[string]string{}
	if d, ok := inst.(swaggerDoc); ok {
		docs = d.SwaggerDoc()
	}
	props := map[string]any{}
	b.fields(t, props)
	for name, p := range props {
		if d := docs[name]; d != "" {
			p.(map[string]any)["description"] = d
		}
	}
	s := map[string]any{"type": "object", "properties": props}
	if d := docs[""]; d != "" {
		s["description"] = d
	}
	if g := b.gvks[t]; len(g) > 0 {
		var list []map[string]string
		for _, gvk := range g {
			list = append(list, map[string]string{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
		}
		s["x-kubernetes-group-version-kind"] = list
	}
	return s
}

// fields adds a struct's JSON properties, flattening inline and embedded structs.
func (b *schemaBuilder) fields(t reflect.Type, props map[string]any) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if strings.Contains(opts, "inline") || (f.Anonymous && name == "") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			b.fields(ft, props)
			continue
		}
		if name == "" {
			name = f.Name
		}
		p := b.prop(f.Type)
		if ps := f.Tag.Get("patchStrategy"); ps != "" {
			p["x-kubernetes-patch-strategy"] = ps
		}
		if mk := f.Tag.Get("patchMergeKey"); mk != "" {
			p["x-kubernetes-patch-merge-key"] = mk
		}
		props[name] = p
	}
}

// prop is a property's schema; references are wrapped in allOf in v3 so that the property
// can carry its own description, as kube-apiserver's documents do.
func (b *schemaBuilder) prop(t reflect.Type) map[string]any {
	s := b.inline(t)
	if _, isRef := s["$ref"]; isRef && b.v3 {
		return map[string]any{"allOf": []any{s}}
	}
	return s
}

func (b *schemaBuilder) inline(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
		return map[string]any{"type": "string", "format": "byte"}
	}
	if t.Kind() == reflect.Struct || (t.Name() != "" && t.PkgPath() != "" && implements(t, (*schemaTyper)(nil))) {
		return b.ref(t)
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int32, reflect.Uint32, reflect.Int16, reflect.Uint16, reflect.Int8, reflect.Uint8:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": b.inline(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": b.inline(t.Elem())}
	case reflect.Interface:
		return map[string]any{"type": "object"}
	}
	return map[string]any{}
}

func implements(t reflect.Type, iface any) bool {
	it := reflect.TypeOf(iface).Elem()
	return t.Implements(it) || reflect.PointerTo(t).Implements(it)
}
