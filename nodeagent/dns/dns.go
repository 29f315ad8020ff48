// Package dns is the node's cluster DNS: it answers the pods of its node
// for the cluster domain from the agent's own watch of Services and
// EndpointSlices, following the Kubernetes DNS specification
// (kubernetes/dns docs/specification.md, schema 1.1.0), and forwards every
// other name to the node's resolvers. Skiff differs from a cluster-wide
// CoreDNS on purpose: each agent serves its own pods (in the spirit of
// NodeLocal DNSCache), with no extra Deployment.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// ttl is the answers' TTL, CoreDNS kubernetes plugin's default.
const ttl = 5

// Config configures a Server.
type Config struct {
	// Informers gives the Service and EndpointSlice informers; the caller
	// starts it.
	Informers informers.SharedInformerFactory
	// Domain is the cluster domain, default "cluster.local".
	Domain string
	// Upstreams are "host:port" resolvers for names outside the domain;
	// default: the nameservers of /etc/resolv.conf.
	Upstreams []string
	Logger    *slog.Logger
}

// Server answers DNS queries.
type Server struct {
	cfg    Config
	zone   string // "cluster.local."
	svc    corelisters.ServiceLister
	slices discoverylisters.EndpointSliceLister
	synced []cache.InformerSynced
	client *mdns.Client
	log    *slog.Logger
}

// New prepares a Server; it registers the informers it needs.
func New(cfg Config) (*Server, error) {
	if cfg.Informers == nil {
		return nil, errors.New("dns: Config.Informers is required")
	}
	if cfg.Domain == "" {
		cfg.Domain = "cluster.local"
	}
	if cfg.Upstreams == nil {
		if cc, err := mdns.ClientConfigFromFile("/etc/resolv.conf"); err == nil {
			for _, s := range cc.Servers {
				cfg.Upstreams = append(cfg.Upstreams, net.JoinHostPort(s, cc.Port))
			}
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	si := cfg.Informers.Core().V1().Services()
	ei := cfg.Informers.Discovery().V1().EndpointSlices()
	return &Server{
		cfg:    cfg,
		zone:   mdns.Fqdn(cfg.Domain),
		svc:    si.Lister(),
		slices: ei.Lister(),
		synced: []cache.InformerSynced{si.Informer().HasSynced, ei.Informer().HasSynced},
		client: &mdns.Client{Timeout: 2 * time.Second},
		log:    cfg.Logger,
	}, nil
}

// ListenAndServe answers on addr ("ip:port"), UDP and TCP, until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns listen: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("dns listen: %w", err)
	}
	return s.Serve(ctx, pc, ln)
}

// Serve answers on pc and ln until ctx ends; it closes them.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	cache.WaitForCacheSync(ctx.Done(), s.synced...)
	servers := []*mdns.Server{
		{PacketConn: pc, Handler: s},
		{Listener: ln, Handler: s},
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ActivateAndServe(); err != nil && ctx.Err() == nil {
				errc <- err
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		s.log.Warn("dns server stopped", "err", err)
	}
	for _, srv := range servers {
		_ = srv.Shutdown()
	}
	wg.Wait()
	return nil
}

// ServeDNS implements mdns.Handler.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	if len(req.Question) != 1 {
		m := new(mdns.Msg)
		m.SetRcode(req, mdns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	var m *mdns.Msg
	switch {
	case mdns.IsSubDomain(s.zone, name), strings.HasSuffix(name, ".in-addr.arpa.") && s.ownsPTR(name):
		m = s.answer(req)
	default:
		m = s.forward(req)
	}
	if m == nil {
		m = new(mdns.Msg)
		m.SetRcode(req, mdns.RcodeServerFailure)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(udpSize(req))
	}
	_ = w.WriteMsg(m)
}

func udpSize(req *mdns.Msg) int {
	if o := req.IsEdns0(); o != nil {
		return int(o.UDPSize())
	}
	return mdns.MinMsgSize
}

// forward asks the node's resolvers, over UDP, then TCP for an answer
// too long for UDP.
func (s *Server) forward(req *mdns.Msg) *mdns.Msg {
	for _, up := range s.cfg.Upstreams {
		c := *s.client
		resp, _, err := c.Exchange(req, up)
		if err == nil && resp.Truncated {
			c.Net = "tcp"
			resp, _, err = c.Exchange(req, up)
		}
		if err == nil {
			return resp
		}
		s.log.Debug("dns forward", "upstream", up, "err", err)
	}
	return nil
}

// answer answers a question in the cluster domain (or a reverse lookup of
// a cluster address).
func (s *Server) answer(req *mdns.Msg) *mdns.Msg {
	q := req.Question[0]
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	rrs, exists, err := s.records(strings.ToLower(q.Name), q.Qtype)
	switch {
	case err != nil:
		m.SetRcode(req, mdns.RcodeServerFailure)
	case !exists:
		m.SetRcode(req, mdns.RcodeNameError)
		m.Ns = []mdns.RR{s.soa()}
	case len(rrs) == 0:
		m.Ns = []mdns.RR{s.soa()} // NODATA
	default:
		m.Answer = rrs
	}
	return m
}

func (s *Server) soa() mdns.RR {
	return &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: s.zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
		Ns:      "ns.dns." + s.zone,
		Mbox:    "hostmaster." + s.zone,
		Serial:  1,
		Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: ttl,
	}
}

func hdr(name string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
}

// records resolves name (lower case, fully qualified) for qtype. exists
// tells NXDOMAIN (false) from NODATA (true, no records).
func (s *Server) records(name string, qtype uint16) ([]mdns.RR, bool, error) {
	if strings.HasSuffix(name, ".in-addr.arpa.") {
		return s.ptr(name, qtype)
	}
	labels := mdns.SplitDomainName(strings.TrimSuffix(name, s.zone))
	if name == s.zone {
		labels = nil
	}
	n := len(labels)
	switch {
	case n == 0:
		return nil, true, nil // the zone itself
	case n == 1 && labels[0] == "dns-version":
		if qtype != mdns.TypeTXT {
			return nil, true, nil
		}
		return []mdns.RR{&mdns.TXT{Hdr: hdr(name, mdns.TypeTXT), Txt: []string{"1.1.0"}}}, true, nil
	case labels[n-1] == "svc":
		return s.svcRecords(name, labels[:n-1], qtype)
	case labels[n-1] == "pod" && n == 3:
		return podRecord(name, labels[0], qtype)
	case n <= 2 && (labels[n-1] == "svc" || labels[n-1] == "pod"):
		return nil, true, nil
	}
	return nil, false, nil
}

// podRecord answers <a-b-c-d>.<ns>.pod.<zone> with a.b.c.d, as kube-dns.
func podRecord(name, dashed string, qtype uint16) ([]mdns.RR, bool, error) {
	ip := net.ParseIP(strings.ReplaceAll(dashed, "-", ".")).To4()
	if ip == nil {
		return nil, false, nil
	}
	if qtype != mdns.TypeA {
		return nil, true, nil
	}
	return []mdns.RR{&mdns.A{Hdr: hdr(name, mdns.TypeA), A: ip}}, true, nil
}

// svcRecords answers names under svc.<zone>; l is what precedes "svc".
func (s *Server) svcRecords(name string, l []string, qtype uint16) ([]mdns.RR, bool, error) {
	switch len(l) {
	case 0:
		return nil, true, nil // svc.<zone>
	case 1:
		return nil, s.namespaceExists(l[0]), nil
	}
	ns, svcName := l[len(l)-1], l[len(l)-2]
	svc, err := s.svc.Services(ns).Get(svcName)
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	base := svcName + "." + ns + ".svc." + s.zone
	switch len(l) {
	case 2: // <svc>.<ns>.svc
		return s.serviceAnswer(name, svc, qtype)
	case 3: // <hostname>.<svc>.<ns>.svc: a headless Service's endpoint
		for _, e := range s.endpoints(svc) {
			if e.hostname == l[0] {
				if qtype != mdns.TypeA {
					return nil, true, nil
				}
				return []mdns.RR{&mdns.A{Hdr: hdr(name, mdns.TypeA), A: e.ip}}, true, nil
			}
		}
		return nil, false, nil
	case 4: // _<port>._<proto>.<svc>.<ns>.svc
		port, proto := strings.TrimPrefix(l[0], "_"), strings.TrimPrefix(l[1], "_")
		if port == l[0] || proto == l[1] {
			return nil, false, nil
		}
		var out []mdns.RR
		found := false
		for _, p := range svc.Spec.Ports {
			pp := strings.ToLower(string(p.Protocol))
			if pp == "" {
				pp = "tcp"
			}
			if p.Name == "" || strings.ToLower(p.Name) != port || pp != proto {
				continue
			}
			found = true
			if qtype != mdns.TypeSRV {
				continue
			}
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				out = append(out, srv(name, uint16(p.Port), base))
				continue
			}
			for _, e := range s.endpoints(svc) {
				if pn, ok := e.ports[p.Name+"/"+pp]; ok {
					out = append(out, srv(name, uint16(pn), e.name(base)))
				}
			}
		}
		return out, found, nil
	}
	return nil, false, nil
}

func srv(name string, port uint16, target string) mdns.RR {
	return &mdns.SRV{Hdr: hdr(name, mdns.TypeSRV), Priority: 0, Weight: 100, Port: port, Target: target}
}

func (s *Server) namespaceExists(ns string) bool {
	list, err := s.svc.Services(ns).List(labels.Everything())
	return err == nil && len(list) > 0
}

// serviceAnswer is <svc>.<ns>.svc: the cluster IP, the ready endpoints of
// a headless Service, or a CNAME for an ExternalName one.
func (s *Server) serviceAnswer(name string, svc *corev1.Service, qtype uint16) ([]mdns.RR, bool, error) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return []mdns.RR{&mdns.CNAME{Hdr: hdr(name, mdns.TypeCNAME), Target: mdns.Fqdn(svc.Spec.ExternalName)}}, true, nil
	}
	if qtype != mdns.TypeA {
		return nil, true, nil
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		ip := net.ParseIP(svc.Spec.ClusterIP).To4()
		if ip == nil {
			return nil, true, nil
		}
		return []mdns.RR{&mdns.A{Hdr: hdr(name, mdns.TypeA), A: ip}}, true, nil
	}
	var out []mdns.RR
	for _, e := range s.endpoints(svc) {
		out = append(out, &mdns.A{Hdr: hdr(name, mdns.TypeA), A: e.ip})
	}
	return out, true, nil
}

// dnsEndpoint is one ready address behind a Service.
type dnsEndpoint struct {
	ip       net.IP
	hostname string
	ports    map[string]int32 // "name/proto"
}

// name is the endpoint's own name: its hostname, or its dashed address.
func (e dnsEndpoint) name(base string) string {
	h := e.hostname
	if h == "" {
		h = strings.ReplaceAll(e.ip.String(), ".", "-")
	}
	return h + "." + base
}

// endpoints are the ready IPv4 addresses of a Service's EndpointSlices
// (all of them when publishNotReadyAddresses).
func (s *Server) endpoints(svc *corev1.Service) []dnsEndpoint {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	slices, err := s.slices.EndpointSlices(svc.Namespace).List(sel)
	if err != nil {
		return nil
	}
	var out []dnsEndpoint
	seen := map[string]bool{}
	for _, sl := range slices {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		ports := map[string]int32{}
		for _, p := range sl.Ports {
			if p.Name == nil || p.Port == nil {
				continue
			}
			proto := "tcp"
			if p.Protocol != nil {
				proto = strings.ToLower(string(*p.Protocol))
			}
			ports[*p.Name+"/"+proto] = *p.Port
		}
		for _, e := range sl.Endpoints {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			if (!ready && !svc.Spec.PublishNotReadyAddresses) || len(e.Addresses) == 0 {
				continue
			}
			ip := net.ParseIP(e.Addresses[0]).To4()
			if ip == nil || seen[ip.String()] {
				continue
			}
			seen[ip.String()] = true
			de := dnsEndpoint{ip: ip, ports: ports}
			if e.Hostname != nil {
				de.hostname = strings.ToLower(*e.Hostname)
			}
			out = append(out, de)
		}
	}
	return out
}

// ownsPTR reports whether a reverse name is a cluster address we know.
func (s *Server) ownsPTR(name string) bool {
	rrs, exists, _ := s.ptr(name, mdns.TypePTR)
	return exists && len(rrs) > 0
}

// ptr answers reverse lookups of cluster IPs and of headless Services'
// endpoints that have a hostname.
func (s *Server) ptr(name string, qtype uint16) ([]mdns.RR, bool, error) {
	ip := reverseIP(name)
	if ip == nil {
		return nil, false, nil
	}
	list, err := s.svc.List(labels.Everything())
	if err != nil {
		return nil, false, err
	}
	var targets []string
	for _, svc := range list {
		base := svc.Name + "." + svc.Namespace + ".svc." + s.zone
		if svc.Spec.ClusterIP == ip.String() {
			targets = append(targets, base)
		}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			for _, e := range s.endpoints(svc) {
				if e.hostname != "" && e.ip.Equal(ip) {
					targets = append(targets, e.name(base))
				}
			}
		}
	}
	if len(targets) == 0 {
		return nil, false, nil
	}
	if qtype != mdns.TypePTR {
		return nil, true, nil
	}
	var out []mdns.RR
	for _, t := range targets {
		out = append(out, &mdns.PTR{Hdr: hdr(name, mdns.TypePTR), Ptr: t})
	}
	return out, true, nil
}

// reverseIP parses d.c.b.a.in-addr.arpa.
func reverseIP(name string) net.IP {
	l := mdns.SplitDomainName(strings.TrimSuffix(name, ".in-addr.arpa."))
	if len(l) != 4 {
		return nil
	}
	return net.ParseIP(l[3] + "." + l[2] + "." + l[1] + "." + l[0]).To4()
}
