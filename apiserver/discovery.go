package apiserver

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// aggregatedType is the exact content type kubectl requires for aggregated discovery.
const aggregatedType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

func wantsAggregated(r *http.Request) bool {
	for _, clause := range strings.Split(r.Header.Get("Accept"), ",") {
		if strings.Contains(clause, "as=APIGroupDiscoveryList") && strings.Contains(clause, "v=v2") &&
			!strings.Contains(clause, "v=v2beta1") && strings.Contains(clause, "application/json") {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serveCoreGroups(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		writeJSON(w, 200, aggregatedType, s.aggregated(true))
		return
	}
	host, _, _ := net.SplitHostPort(r.Host)
	if host == "" {
		host = r.Host
	}
	writeJSON(w, 200, "application/json", &metav1.APIVersions{
		TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
		Versions:                   []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}},
	})
}

func (s *Server) serveGroups(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		writeJSON(w, 200, aggregatedType, s.aggregated(false))
		return
	}
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, g := range s.reg.groups {
		if g != "" {
			list.Groups = append(list.Groups, s.apiGroup(g))
		}
	}
	writeJSON(w, 200, "application/json", list)
}

func (s *Server) apiGroup(g string) metav1.APIGroup {
	out := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: g}
	for _, v := range s.reg.versions[g] {
		out.Versions = append(out.Versions, metav1.GroupVersionForDiscovery{GroupVersion: g + "/" + v, Version: v})
	}
	out.PreferredVersion = out.Versions[0]
	return out
}

func (s *Server) serveGroup(w http.ResponseWriter, r *http.Request, group string) {
	if _, ok := s.reg.versions[group]; !ok || group == "" {
		writeStatus(w, toStatus(errNotFoundPath(r), groupResourceNone, ""))
		return
	}
	g := s.apiGroup(group)
	writeJSON(w, 200, "application/json", &g)
}

// serveResourceList answers /api/v1 and /apis/<group>/<version>.
func (s *Server) serveResourceList(w http.ResponseWriter, r *http.Request, group, version string) {
	res := s.reg.inVersion(group, version)
	if len(res) == 0 {
		writeStatus(w, toStatus(errNotFoundPath(r), groupResourceNone, ""))
		return
	}
	gv := version
	if group != "" {
		gv = group + "/" + version
	}
	list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv}
	for _, rs := range res {
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: rs.GVR.Resource, SingularName: rs.singular(), Namespaced: rs.Namespaced, Kind: rs.Kind,
			Verbs: rs.verbs(), ShortNames: rs.ShortNames, Categories: rs.Categories,
		})
		for _, sub := range subresources(rs) {
			ar := metav1.APIResource{
				Name: rs.GVR.Resource + "/" + sub.Name, Namespaced: rs.Namespaced, Kind: sub.Kind, Group: sub.Group, Verbs: sub.Verbs,
			}
			if sub.Group != "" {
				ar.Version = "v1" // kubectl drain needs both to find policy/v1 Eviction
			}
			list.APIResources = append(list.APIResources, ar)
		}
	}
	writeJSON(w, 200, "application/json", list)
}

// subresources lists a resource's subresources for discovery.
func subresources(rs *Resource) []SubresourceInfo {
	var out []SubresourceInfo
	if rs.Status {
		out = append(out, SubresourceInfo{Name: "status", Kind: rs.Kind, Verbs: []string{"get", "patch", "update"}})
	}
	if rs.Scale != nil {
		out = append(out, SubresourceInfo{Name: "scale", Kind: "Scale", Group: "autoscaling", Verbs: []string{"get", "patch", "update"}})
	}
	return append(out, rs.Extra...)
}

// aggregated builds the apidiscovery.k8s.io/v2 document of the core group (core=true) or
// of all the named groups.
func (s *Server) aggregated(core bool) *apidiscoveryv2.APIGroupDiscoveryList {
	list := &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
	for _, g := range s.reg.groups {
		if (g == "") != core {
			continue
		}
		gd := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g}}
		for _, v := range s.reg.versions[g] {
			vd := apidiscoveryv2.APIVersionDiscovery{Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
			for _, rs := range s.reg.inVersion(g, v) {
				scope := apidiscoveryv2.ScopeCluster
				if rs.Namespaced {
					scope = apidiscoveryv2.ScopeNamespace
				}
				rd := apidiscoveryv2.APIResourceDiscovery{
					Resource: rs.GVR.Resource, SingularResource: rs.singular(), Scope: scope,
					ResponseKind: &metav1.GroupVersionKind{Group: g, Version: v, Kind: rs.Kind},
					Verbs:        rs.verbs(), ShortNames: rs.ShortNames, Categories: rs.Categories,
				}
				for _, sub := range subresources(rs) {
					kg, kv := g, v
					if sub.Group != "" {
						kg, kv = sub.Group, "v1"
					}
					rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
						Subresource: sub.Name, Verbs: sub.Verbs,
						ResponseKind: &metav1.GroupVersionKind{Group: kg, Version: kv, Kind: sub.Kind},
					})
				}
				vd.Resources = append(vd.Resources, rd)
			}
			gd.Versions = append(gd.Versions, vd)
		}
		list.Items = append(list.Items, gd)
	}
	return list
}
