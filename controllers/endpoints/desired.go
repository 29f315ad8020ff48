// Package endpoints holds the EndpointSlice controller and, beside it for older clients,
// the v1 Endpoints controller: both turn a Service's selector and the pods it selects into
// the addresses the proxies program, following pod readiness.
package endpoints

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/controllers/internal/podutil"
)

const (
	// ManagedBy marks the slices this controller owns, as kube-controller-manager's.
	ManagedBy      = "endpointslice-controller.k8s.io"
	maxPerSlice    = 100
	zoneLabel      = "topology.kubernetes.io/zone"
	serviceNameKey = discoveryv1.LabelServiceName
)

// Selects reports whether the controllers manage svc's endpoints: it has a selector and is
// not an ExternalName.
func Selects(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && len(svc.Spec.Selector) > 0
}

// endpointPod is a pod that may back the Service: it has an address and is not finished.
func endpointPod(p *corev1.Pod) bool {
	return p.Status.PodIP != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// resolvePort finds a Service port's target on a pod: a number, or the named container port.
func resolvePort(sp corev1.ServicePort, p *corev1.Pod) (int32, bool) {
	tp := sp.TargetPort
	if tp.Type == intstr.Int {
		if tp.IntVal == 0 {
			return sp.Port, true
		}
		return tp.IntVal, true
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal && protocolOf(cp.Protocol) == protocolOf(sp.Protocol) {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// podPorts is the Service's ports as they land on one pod.
func podPorts(svc *corev1.Service, p *corev1.Pod) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for _, sp := range svc.Spec.Ports {
		n, ok := resolvePort(sp, p)
		if !ok {
			continue
		}
		name, proto, port := sp.Name, protocolOf(sp.Protocol), n
		ep := discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &port}
		if sp.AppProtocol != nil {
			ap := *sp.AppProtocol
			ep.AppProtocol = &ap
		}
		out = append(out, ep)
	}
	return out
}

func portsKey(ports []discoveryv1.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "%s/%s/%d,", *p.Name, *p.Protocol, *p.Port)
	}
	return b.String()
}

// DesiredSlices is the EndpointSlices svc should have, before names: pods grouped by how
// the Service's ports resolve on them, at most 100 endpoints a slice, in a stable order so
// an unchanged set of pods gives unchanged slices. Terminating pods stay, not ready and
// marked terminating, as Kubernetes keeps them for graceful connection draining.
func DesiredSlices(svc *corev1.Service, pods []*corev1.Pod, zoneOf func(node string) string) []*discoveryv1.EndpointSlice {
	groups := map[string][]*corev1.Pod{}
	ports := map[string][]discoveryv1.EndpointPort{}
	for _, p := range pods {
		if !endpointPod(p) {
			continue
		}
		pp := podPorts(svc, p)
		if len(svc.Spec.Ports) > 0 && len(pp) == 0 {
			continue
		}
		k := portsKey(pp)
		groups[k] = append(groups[k], p)
		ports[k] = pp
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*discoveryv1.EndpointSlice
	for _, k := range keys {
		g := groups[k]
		sort.Slice(g, func(i, j int) bool { return g[i].Name < g[j].Name })
		for start := 0; start < len(g); start += maxPerSlice {
			end := min(start+maxPerSlice, len(g))
			s := newSlice(svc, ports[k])
			for _, p := range g[start:end] {
				s.Endpoints = append(s.Endpoints, endpointOf(svc, p, zoneOf))
			}
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		// A Service with no endpoints still has one empty slice, as in Kubernetes: the
		// proxies then know it exists and reject its traffic.
		var ps []discoveryv1.EndpointPort
		for _, sp := range svc.Spec.Ports {
			if sp.TargetPort.Type == intstr.Int {
				name, proto, port := sp.Name, protocolOf(sp.Protocol), sp.TargetPort.IntVal
				if port == 0 {
					port = sp.Port
				}
				ps = append(ps, discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &port})
			}
		}
		out = append(out, newSlice(svc, ps))
	}
	return out
}

func newSlice(svc *corev1.Service, ports []discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	labels := map[string]string{}
	for k, v := range svc.Labels {
		labels[k] = v
	}
	labels[serviceNameKey] = svc.Name
	labels[discoveryv1.LabelManagedBy] = ManagedBy
	t := true
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: svc.Namespace, GenerateName: podutil.GenerateNamePrefix(svc.Name), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID,
				Controller: &t, BlockOwnerDeletion: &t}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
}

func endpointOf(svc *corev1.Service, p *corev1.Pod, zoneOf func(string) string) discoveryv1.Endpoint {
	terminating := p.DeletionTimestamp != nil
	serving := podutil.IsReady(p)
	ready := serving && !terminating
	if svc.Spec.PublishNotReadyAddresses {
		ready, serving = true, true
	}
	ep := discoveryv1.Endpoint{
		Addresses:  []string{p.Status.PodIP},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
	}
	if p.Spec.NodeName != "" {
		n := p.Spec.NodeName
		ep.NodeName = &n
		if zoneOf != nil {
			if z := zoneOf(n); z != "" {
				ep.Zone = &z
			}
		}
	}
	if p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name {
		h := p.Spec.Hostname
		ep.Hostname = &h
	}
	return ep
}

// DesiredSubsets is the v1 Endpoints subsets of svc: ready addresses and not-ready ones,
// grouped by port set, sorted as the legacy controller's repacking does.
func DesiredSubsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	type group struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	for _, p := range pods {
		if !endpointPod(p) || p.DeletionTimestamp != nil {
			continue
		}
		pp := podPorts(svc, p)
		if len(svc.Spec.Ports) > 0 && len(pp) == 0 {
			continue
		}
		k := portsKey(pp)
		g := groups[k]
		if g == nil {
			g = &group{}
			for _, x := range pp {
				g.ports = append(g.ports, corev1.EndpointPort{Name: *x.Name, Protocol: *x.Protocol, Port: *x.Port, AppProtocol: x.AppProtocol})
			}
			groups[k] = g
		}
		a := corev1.EndpointAddress{IP: p.Status.PodIP, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}}
		if p.Spec.NodeName != "" {
			n := p.Spec.NodeName
			a.NodeName = &n
		}
		if p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name {
			a.Hostname = p.Spec.Hostname
		}
		if podutil.IsReady(p) || svc.Spec.PublishNotReadyAddresses {
			g.ready = append(g.ready, a)
		} else {
			g.notReady = append(g.notReady, a)
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []corev1.EndpointSubset
	for _, k := range keys {
		g := groups[k]
		byIP := func(s []corev1.EndpointAddress) {
			sort.Slice(s, func(i, j int) bool { return s[i].IP < s[j].IP })
		}
		byIP(g.ready)
		byIP(g.notReady)
		out = append(out, corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	return out
}
