package proxy

import (
	"net"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// portName names one port of one Service, as upstream's ServicePortName.
type portName struct {
	Namespace, Name, Port string
	Protocol              corev1.Protocol
}

func (p portName) String() string {
	return p.Namespace + "/" + p.Name + "/" + strings.ToLower(string(p.Protocol)) + "/" + p.Port
}

// servicePort is what the proxy programs for one Service port.
type servicePort struct {
	name      portName
	clusterIP string // "" for headless and ExternalName Services
	port      int32
	nodePort  int32 // 0 unless NodePort or LoadBalancer
	// affinity is sessionAffinity ClientIP's timeout in seconds, 0 for none.
	affinity  int32
	endpoints []endpoint
	// local are the endpoints on this node; internalLocal and
	// externalLocal are internalTrafficPolicy and externalTrafficPolicy
	// Local: only they serve the cluster IP, or the node port.
	local                        []endpoint
	internalLocal, externalLocal bool
}

// endpoint is one backend address of a Service port.
type endpoint struct {
	IP   string
	Port int32
}

func (e endpoint) String() string { return net.JoinHostPort(e.IP, itoa(e.Port)) }

// servicePorts turns a Service and its EndpointSlices into the ports the
// proxy programs. Ready endpoints are used; when none is ready, endpoints
// that are serving and terminating are (as upstream's
// ProxyTerminatingEndpoints). Only IPv4 is programmed.
func servicePorts(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, nodeName string) []servicePort {
	if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	cip := svc.Spec.ClusterIP
	if cip == corev1.ClusterIPNone || net.ParseIP(cip).To4() == nil {
		return nil // headless: DNS only
	}
	var out []servicePort
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		sp := servicePort{
			name:      portName{svc.Namespace, svc.Name, p.Name, proto},
			clusterIP: cip,
			port:      p.Port,
		}
		if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			sp.nodePort = p.NodePort
		}
		if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			sp.affinity = 10800 // Kubernetes' default
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				sp.affinity = *c.ClientIP.TimeoutSeconds
			}
		}
		sp.endpoints, sp.local = sliceEndpoints(slices, p.Name, proto, nodeName)
		sp.internalLocal = svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
		sp.externalLocal = sp.nodePort != 0 && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		out = append(out, sp)
	}
	return out
}

func sliceEndpoints(slices []*discoveryv1.EndpointSlice, portName string, proto corev1.Protocol, nodeName string) (eps, local []endpoint) {
	var ready, terminating []endpoint
	onNode := map[endpoint]bool{}
	seen := map[endpoint]bool{}
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var port int32
		found := false
		for _, p := range s.Ports {
			pp := corev1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name == portName && pp == proto && p.Port != nil {
				port, found = *p.Port, true
				break
			}
		}
		if !found {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 || net.ParseIP(e.Addresses[0]).To4() == nil {
				continue
			}
			ep := endpoint{IP: e.Addresses[0], Port: port}
			if seen[ep] {
				continue
			}
			if nodeName != "" && e.NodeName != nil && *e.NodeName == nodeName {
				onNode[ep] = true
			}
			c := e.Conditions
			switch {
			case c.Ready == nil || *c.Ready:
				seen[ep] = true
				ready = append(ready, ep)
			case (c.Serving == nil || *c.Serving) && c.Terminating != nil && *c.Terminating:
				terminating = append(terminating, ep)
			}
		}
	}
	if len(ready) == 0 {
		ready = terminating
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].String() < ready[j].String() })
	for _, e := range ready {
		if onNode[e] {
			local = append(local, e)
		}
	}
	return ready, local
}
