package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// managedByServer marks the kubernetes Service's EndpointSlices, which the leader writes
// (the EndpointSlice controller only manages Services with a selector).
const managedByServer = "skiff-server"

// kubernetesServiceIP is the first address of the service CIDR, as in Kubernetes.
func kubernetesServiceIP(cidr string) (string, error) {
	if cidr == "" {
		cidr = "10.96.0.0/16"
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return "", fmt.Errorf("cluster: service CIDR %q", cidr)
	}
	v := binary.BigEndian.Uint32(p.Masked().Addr().AsSlice()) + 1
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b).String(), nil
}

// kubernetesServiceLoop keeps the `kubernetes` Service in default, and its Endpoints and
// EndpointSlices listing the live servers' API addresses, current as servers come and go.
// It runs on the leader only.
func (s *Server) kubernetesServiceLoop(ctx context.Context) {
	ip, err := kubernetesServiceIP(s.cfg.ServiceCIDR)
	if err != nil {
		s.log.Error("kubernetes service", "err", err)
		return
	}
	client, err := kubernetes.NewForConfig(RestConfigFor(s.apiAccess()))
	if err != nil {
		s.log.Error("kubernetes service", "err", err)
		return
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		if err := s.syncKubernetesService(ctx, client, ip); err != nil && ctx.Err() == nil {
			s.log.Warn("kubernetes service: sync failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.gsp.changes():
		}
	}
}

// apiEndpoints are the live servers' API addresses, grouped by port (servers on one
// machine listen on different ports).
func (s *Server) apiEndpoints() map[int32][]string {
	out := map[int32][]string{}
	for _, m := range s.gsp.members() {
		if m.Role != "server" || !m.Alive {
			continue
		}
		u, err := url.Parse(m.APIAddr)
		if err != nil {
			continue
		}
		host, portStr, err := net.SplitHostPort(u.Host)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil || net.ParseIP(host) == nil {
			continue
		}
		out[int32(port)] = append(out[int32(port)], host)
	}
	for _, hosts := range out {
		sort.Strings(hosts)
	}
	return out
}

func (s *Server) syncKubernetesService(ctx context.Context, client kubernetes.Interface, ip string) error {
	eps := s.apiEndpoints()
	if len(eps) == 0 {
		return nil
	}
	ports := make([]int32, 0, len(eps))
	for p := range eps {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	labels := map[string]string{"component": "apiserver", "provider": "kubernetes"}
	svcs := client.CoreV1().Services(metav1.NamespaceDefault)
	if _, err := svcs.Get(ctx, "kubernetes", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Labels: labels},
			Spec: corev1.ServiceSpec{ClusterIP: ip, Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone,
				Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(ports[0])}}}}
		if _, err := svcs.Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create service: %w", err)
		}
		s.log.Info("created the kubernetes service", "clusterIP", ip)
	} else if err != nil {
		return err
	}
	// v1 Endpoints: one subset per port.
	want := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Labels: labels}}
	for _, p := range ports {
		sub := corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Name: "https", Port: p, Protocol: corev1.ProtocolTCP}}}
		for _, h := range eps[p] {
			sub.Addresses = append(sub.Addresses, corev1.EndpointAddress{IP: h})
		}
		want.Subsets = append(want.Subsets, sub)
	}
	epsAPI := client.CoreV1().Endpoints(metav1.NamespaceDefault)
	cur, err := epsAPI.Get(ctx, "kubernetes", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := epsAPI.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	case err != nil:
		return err
	case !apiequality.Semantic.DeepEqual(cur.Subsets, want.Subsets):
		want.ResourceVersion = cur.ResourceVersion
		if _, err := epsAPI.Update(ctx, want, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	// EndpointSlices: one per port, named kubernetes, kubernetes-1, ...
	slices := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault)
	for i, p := range ports {
		name := "kubernetes"
		if i > 0 {
			name = fmt.Sprintf("kubernetes-%d", i)
		}
		ready, portName, proto, port := true, "https", corev1.ProtocolTCP, p
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: managedByServer}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Protocol: &proto, Port: &port}},
		}
		for _, h := range eps[p] {
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{h}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		cur, err := slices.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err := slices.Create(ctx, sl, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
		case err != nil:
			return err
		case !apiequality.Semantic.DeepEqual(cur.Endpoints, sl.Endpoints) || !apiequality.Semantic.DeepEqual(cur.Ports, sl.Ports):
			sl.ResourceVersion = cur.ResourceVersion
			if _, err := slices.Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
	}
	// Slices for ports no server uses any more.
	list, err := slices.List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=" + managedByServer})
	if err != nil {
		return err
	}
	for _, sl := range list.Items {
		if len(sl.Ports) == 1 && sl.Ports[0].Port != nil && len(eps[*sl.Ports[0].Port]) == 0 {
			if err := slices.Delete(ctx, sl.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}
