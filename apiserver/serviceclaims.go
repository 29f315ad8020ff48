package apiserver

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// serviceClaims allocates Services' cluster IPs from the service CIDR and node ports from
// the node-port range, as kube-apiserver's --service-cluster-ip-range and
// --service-node-port-range.
type serviceClaims struct {
	cidr             netip.Prefix
	first, last      uint32 // usable addresses: the network and broadcast addresses are not
	portMin, portMax int32
}

func newServiceClaims(cidr string, portMin, portMax int32) (*serviceClaims, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return nil, fmt.Errorf("apiserver: service CIDR %q: want an IPv4 prefix of /30 or wider", cidr)
	}
	p = p.Masked()
	base := binary.BigEndian.Uint32(p.Addr().AsSlice())
	size := uint32(1) << (32 - p.Bits())
	if portMin < 1 || portMax > 65535 || portMin > portMax {
		return nil, fmt.Errorf("apiserver: node port range %d-%d", portMin, portMax)
	}
	return &serviceClaims{cidr: p, first: base + 1, last: base + size - 2, portMin: portMin, portMax: portMax}, nil
}

// KubernetesServiceIP is the first address of the range, which the `kubernetes` Service holds.
func (c *serviceClaims) KubernetesServiceIP() string { return ipString(c.first) }

func ipString(v uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b).String()
}

func (c *serviceClaims) Prefix() string { return "services/" }

func hasClusterIP(s *corev1.Service) bool {
	return s.Spec.Type != corev1.ServiceTypeExternalName && s.Spec.ClusterIP != corev1.ClusterIPNone && s.Spec.ClusterIP != ""
}

func needsNodePorts(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer
}

func (c *serviceClaims) Claims(o runtime.Object) []claim {
	s := o.(*corev1.Service)
	var out []claim
	if hasClusterIP(s) {
		out = append(out, claim{Key: "services/clusterip/" + s.Spec.ClusterIP, Field: field.NewPath("spec", "clusterIP"), Value: s.Spec.ClusterIP})
	}
	seen := map[int32]bool{}
	for i, p := range s.Spec.Ports {
		if p.NodePort == 0 || seen[p.NodePort] {
			continue // one Service may use a node port for TCP and UDP alike
		}
		seen[p.NodePort] = true
		out = append(out, claim{Key: "services/nodeport/" + strconv.Itoa(int(p.NodePort)),
			Field: field.NewPath("spec", "ports").Index(i).Child("nodePort"), Value: strconv.Itoa(int(p.NodePort))})
	}
	return out
}

// Assign gives a Service its cluster IP and node ports, as kube-apiserver does: an update
// that leaves them out keeps the ones it had; a type that does not use them drops them.
func (c *serviceClaims) Assign(o, oldObj runtime.Object, taken claimSet) field.ErrorList {
	s := o.(*corev1.Service)
	var old *corev1.Service
	if oldObj != nil {
		old = oldObj.(*corev1.Service)
	}
	var errs field.ErrorList
	ipPath := field.NewPath("spec", "clusterIP")
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		if old != nil && s.Spec.ClusterIP == old.Spec.ClusterIP {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil // released on the change to ExternalName
		}
		if s.Spec.ClusterIP != "" {
			errs = append(errs, field.Forbidden(ipPath, "may not be set for ExternalName services"))
		}
	} else {
		if s.Spec.ClusterIP == "" && len(s.Spec.ClusterIPs) > 0 {
			s.Spec.ClusterIP = s.Spec.ClusterIPs[0]
		}
		if s.Spec.ClusterIP == "" && old != nil && old.Spec.ClusterIP != "" {
			s.Spec.ClusterIP = old.Spec.ClusterIP
		}
		switch ip := s.Spec.ClusterIP; {
		case ip == corev1.ClusterIPNone:
			if s.Spec.Type != corev1.ServiceTypeClusterIP {
				errs = append(errs, field.Invalid(ipPath, ip, "may be set to 'None' only for ClusterIP services"))
			}
		case ip == "":
			v, ok := c.pickIP(taken)
			if !ok {
				errs = append(errs, field.InternalError(ipPath, fmt.Errorf("range is full: no IP left in %s", c.cidr)))
			}
			s.Spec.ClusterIP = v
		case old == nil || ip != old.Spec.ClusterIP:
			if e := c.checkIP(ip, taken); e != nil {
				errs = append(errs, e)
			}
		}
		if s.Spec.ClusterIP != "" {
			s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
		}
	}
	errs = append(errs, c.assignNodePorts(s, old, taken)...)
	return errs
}

func (c *serviceClaims) checkIP(ip string, taken claimSet) *field.Error {
	p := field.NewPath("spec", "clusterIP")
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return field.Invalid(p, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
	}
	v := binary.BigEndian.Uint32(a.AsSlice())
	if v < c.first || v > c.last {
		return field.Invalid(p, ip, fmt.Sprintf("provided IP is not in the valid range. The range of valid IPs is %s", c.cidr))
	}
	if taken["services/clusterip/"+ip] {
		return field.Invalid(p, ip, "provided IP is already allocated")
	}
	return nil
}

// pickIP chooses a free address at random (the first one is kept for the kubernetes
// Service), then scans from there if the range is crowded.
func (c *serviceClaims) pickIP(taken claimSet) (string, bool) {
	lo, n := c.first+1, c.last-c.first
	if c.last <= c.first {
		lo, n = c.first, c.last-c.first+1
	}
	start := rand.Uint32N(n)
	for i := uint32(0); i < n; i++ {
		ip := ipString(lo + (start+i)%n)
		if !taken["services/clusterip/"+ip] {
			return ip, true
		}
	}
	return "", false
}

func (c *serviceClaims) assignNodePorts(s, old *corev1.Service, taken claimSet) field.ErrorList {
	var errs field.ErrorList
	oldPorts := map[string]int32{}
	if old != nil && needsNodePorts(old) {
		for _, p := range old.Spec.Ports {
			oldPorts[portID(p)] = p.NodePort
		}
	}
	if !needsNodePorts(s) {
		for i := range s.Spec.Ports {
			p := &s.Spec.Ports[i]
			if p.NodePort != 0 && oldPorts[portID(*p)] == p.NodePort {
				p.NodePort = 0 // the type no longer uses it: released
			}
			if p.NodePort != 0 {
				errs = append(errs, field.Forbidden(field.NewPath("spec", "ports").Index(i).Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
			}
		}
		return errs
	}
	mine := map[int32]bool{}
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if p.NodePort == 0 {
			p.NodePort = oldPorts[portID(*p)]
		}
		path := field.NewPath("spec", "ports").Index(i).Child("nodePort")
		switch {
		case p.NodePort == 0:
			v, ok := c.pickPort(taken, mine)
			if !ok {
				errs = append(errs, field.InternalError(path, fmt.Errorf("range is full: no port left in %d-%d", c.portMin, c.portMax)))
			}
			p.NodePort = v
		case p.NodePort < c.portMin || p.NodePort > c.portMax:
			errs = append(errs, field.Invalid(path, p.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", c.portMin, c.portMax)))
		case !mine[p.NodePort] && taken["services/nodeport/"+strconv.Itoa(int(p.NodePort))]:
			errs = append(errs, field.Invalid(path, p.NodePort, "provided port is already allocated"))
		}
		mine[p.NodePort] = true
	}
	return errs
}

// portID matches a port across an update: by name, else by port and protocol.
func portID(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprintf("%d/%s", p.Port, p.Protocol)
}

func (c *serviceClaims) pickPort(taken claimSet, mine map[int32]bool) (int32, bool) {
	n := c.portMax - c.portMin + 1
	start := rand.Int32N(n)
	for i := int32(0); i < n; i++ {
		v := c.portMin + (start+i)%n
		if !mine[v] && !taken["services/nodeport/"+strconv.Itoa(int(v))] {
			return v, true
		}
	}
	return 0, false
}
