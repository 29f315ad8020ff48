package nodeagent

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"

	"github.com/skiff-dev/skiff/nodeagent/dns"
	"github.com/skiff-dev/skiff/nodeagent/proxy"
)

// svcWatch is the agent's watch of Services and EndpointSlices, shared by
// the proxy, the cluster DNS and the pods' service environment variables.
type svcWatch struct {
	factory  informers.SharedInformerFactory
	services corelisters.ServiceLister
	synced   cache.InformerSynced
}

func newSvcWatch(a *Agent) *svcWatch {
	f := informers.NewSharedInformerFactory(a.cfg.Client, 0)
	si := f.Core().V1().Services()
	f.Discovery().V1().EndpointSlices().Informer()
	return &svcWatch{factory: f, services: si.Lister(), synced: si.Informer().HasSynced}
}

// runServices runs the node's service proxy and cluster DNS once the
// node's pod CIDR is known (the DNS listens on the pods' gateway).
func (a *Agent) runServices(ctx context.Context) error {
	if a.svc == nil {
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var proxier *proxy.Proxier
	if a.cfg.ServiceProxy {
		nft, err := knftables.New(knftables.IPv4Family, proxy.TableName)
		if err == nil {
			proxier, err = proxy.New(proxy.Config{
				NFT: nft, Informers: a.svc.factory, NodeName: a.cfg.NodeName, ClusterCIDR: a.cfg.ClusterCIDR,
				Conntrack: proxy.NetlinkConntrack{}, Logger: a.log.With("component", "proxy"),
			})
		}
		if err != nil {
			a.log.Error("service proxy disabled", "err", err)
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := proxier.Run(ctx); err != nil && ctx.Err() == nil {
					a.log.Error("service proxy", "err", err)
				}
			}()
		}
	}
	var dnsServer *dns.Server
	if a.cfg.ClusterDNS {
		var err error
		if dnsServer, err = dns.New(dns.Config{Informers: a.svc.factory, Domain: a.cfg.ClusterDomain, Logger: a.log.With("component", "dns")}); err != nil {
			return err
		}
	}
	a.svc.factory.Start(ctx.Done())
	defer a.svc.factory.Shutdown()

	gw, cidr, err := a.waitPodCIDR(ctx)
	if err != nil || gw == nil {
		return err
	}
	// Bridged traffic between pods of this node must pass the nat hooks, or
	// a reply from a local backend would skip the reverse DNAT.
	if proxier != nil {
		_ = os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("1"), 0o644)
		// A Service's endpoint may be a loopback address: the kubernetes
		// Service of a cluster on loopback (skiff up without --netns) has
		// the servers' 127.0.0.1 addresses. The kernel drops a pod's packet
		// DNATed there as martian unless route_localnet is on for the
		// interface it came in on (as kube-proxy sets it for localhost
		// node ports); the proxy's filter-input chain drops what reaches
		// loopback from a pod without DNAT.
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+a.net.Bridge()+"/route_localnet", []byte("1"), 0o644); err != nil {
			a.log.Warn("route_localnet on the pod bridge: pods cannot reach Services with loopback endpoints", "err", err)
		}
		proxier.SetPodCIDR(cidr)
	}
	if dnsServer == nil {
		<-ctx.Done()
		return nil
	}
	addr := net.JoinHostPort(gw.String(), "53")
	for {
		err := dnsServer.ListenAndServe(ctx, addr)
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("cluster DNS", "addr", addr, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}

// waitPodCIDR waits for the Node's pod CIDR and sets up the bridge for it;
// it returns the pods' gateway.
func (a *Agent) waitPodCIDR(ctx context.Context) (net.IP, string, error) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if n := a.pods.node.Load(); n != nil && n.Spec.PodCIDR != "" {
			if err := a.net.SetPodCIDR(n.Spec.PodCIDR); err != nil {
				a.log.Warn("pod CIDR", "err", err)
			} else {
				return a.net.Gateway(), n.Spec.PodCIDR, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, "", nil
		case <-t.C:
		}
	}
}

// clusterDNSIP is the address pods use for cluster DNS; nil without one.
func (a *Agent) clusterDNSIP() net.IP {
	if a.svc == nil || !a.cfg.ClusterDNS || a.net == nil {
		return nil
	}
	return a.net.Gateway()
}

// resolvConf is a pod's /etc/resolv.conf by its dnsPolicy and dnsConfig,
// as the kubelet writes it. host is the node's resolv.conf.
func resolvConf(pod *corev1.Pod, host []byte, dnsIP net.IP, domain string) []byte {
	hostNS, hostSearch, hostOpts := parseResolvConf(host)
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = corev1.DNSDefault // as the kubelet: ClusterFirstWithHostNet is the opt-in
	}
	if (policy == corev1.DNSClusterFirst || policy == corev1.DNSClusterFirstWithHostNet) && dnsIP == nil {
		policy = corev1.DNSDefault // no cluster DNS on this node
	}
	var ns, search, opts []string
	switch policy {
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet:
		ns = []string{dnsIP.String()}
		search = append([]string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}, hostSearch...)
		opts = []string{"ndots:5"}
	case corev1.DNSDefault:
		ns, search, opts = hostNS, hostSearch, hostOpts
	case corev1.DNSNone:
	}
	if c := pod.Spec.DNSConfig; c != nil {
		for _, n := range c.Nameservers {
			if !contains(ns, n) {
				ns = append(ns, n)
			}
		}
		for _, s := range c.Searches {
			if !contains(search, s) {
				search = append(search, s)
			}
		}
		for _, o := range c.Options {
			v := o.Name
			if o.Value != nil {
				v += ":" + *o.Value
			}
			kept := opts[:0:0]
			for _, old := range opts {
				if name, _, _ := strings.Cut(old, ":"); name != o.Name {
					kept = append(kept, old)
				}
			}
			opts = append(kept, v)
		}
	}
	var b strings.Builder
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, n := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", n)
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	return []byte(b.String())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func parseResolvConf(data []byte) (ns, search, opts []string) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				ns = append(ns, f[1])
			}
		case "search", "domain":
			search = f[1:]
		case "options":
			opts = append(opts, f[1:]...)
		}
	}
	return ns, search, opts
}

// serviceEnv is the <SVC>_SERVICE_HOST/_PORT and Docker-link variables of
// the Services a pod sees, as the kubelet sets them: its namespace's (with
// enableServiceLinks, the default) and the API's "kubernetes" Service.
func (a *Agent) serviceEnv(ctx context.Context, pod *corev1.Pod) ([]envVar, error) {
	if a.svc == nil {
		return nil, nil
	}
	var list []*corev1.Service
	if a.svc.synced() {
		var err error
		if list, err = a.svc.services.List(labels.Everything()); err != nil {
			return nil, err
		}
	} else {
		l, err := a.cfg.Client.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("services for environment: %w", err)
		}
		for i := range l.Items {
			list = append(list, &l.Items[i])
		}
	}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	byName := map[string]*corev1.Service{}
	for _, s := range list {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		if s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes" {
			if _, ok := byName[s.Name]; !ok {
				byName[s.Name] = s
			}
		} else if s.Namespace == pod.Namespace && links {
			byName[s.Name] = s
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []envVar
	for _, n := range names {
		out = append(out, serviceEnvVars(byName[n])...)
	}
	return out, nil
}

// serviceEnvVars is the kubelet's envvars.FromServices for one Service.
func serviceEnvVars(s *corev1.Service) []envVar {
	if len(s.Spec.Ports) == 0 {
		return nil
	}
	prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
	ip := s.Spec.ClusterIP
	out := []envVar{
		{prefix + "_SERVICE_HOST", ip},
		{prefix + "_SERVICE_PORT", strconv.Itoa(int(s.Spec.Ports[0].Port))},
	}
	for _, p := range s.Spec.Ports {
		if p.Name != "" {
			out = append(out, envVar{prefix + "_SERVICE_PORT_" + strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), strconv.Itoa(int(p.Port))})
		}
	}
	for i, p := range s.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		lower := strings.ToLower(proto)
		url := lower + "://" + net.JoinHostPort(ip, strconv.Itoa(int(p.Port)))
		if i == 0 {
			out = append(out, envVar{prefix + "_PORT", url})
		}
		pp := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, strings.ToUpper(proto))
		out = append(out,
			envVar{pp, url},
			envVar{pp + "_PROTO", lower},
			envVar{pp + "_PORT", strconv.Itoa(int(p.Port))},
			envVar{pp + "_ADDR", ip},
		)
	}
	return out
}
