package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// The table's fixed objects, named as upstream kube-proxy's nftables mode
// names them.
const (
	servicesChain      = "services"
	markMasqChain      = "mark-for-masquerade"
	masqueradingChain  = "masquerading"
	podEgressChain     = "pod-egress"
	endpointsCheck     = "service-endpoints-check"
	rejectChain        = "reject-chain"
	serviceIPsMap      = "service-ips"
	serviceNodePorts   = "service-nodeports"
	noEndpointServices = "no-endpoint-services"
	noEndpointNodePort = "no-endpoint-nodeports"

	// masqMark is the packet mark that asks for masquerade in postrouting.
	masqMark = "0x4000"
)

func itoa(i int32) string { return strconv.Itoa(int(i)) }

// hashName is upstream's chain-name prefix: a short base32 hash that keeps
// names unique whatever the readable suffix.
func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(sum[:])[:8]
}

func serviceChain(p portName) string  { return "service-" + hashName(p.String()) + "-" + p.String() }
func externalChain(p portName) string { return "external-" + hashName(p.String()) + "-" + p.String() }
func localChain(p portName) string    { return "local-" + hashName(p.String()) + "-" + p.String() }
func endpointChain(p portName, e endpoint) string {
	s := p.String() + "__" + e.IP + "/" + itoa(e.Port)
	return "endpoint-" + hashName(s) + "-" + s
}
func affinitySet(p portName, e endpoint) string {
	s := p.String() + "__" + e.IP + "/" + itoa(e.Port)
	return "affinity-" + hashName(s)
}

// element is one entry of one of the table's verdict maps.
type element struct {
	Map   string
	Key   []string
	Value string
}

func (e element) id() string { return e.Map + " " + strings.Join(e.Key, " . ") }

// ruleSet is everything the proxy programs for one Service: its chains
// (name to rules), its affinity sets (name to timeout in seconds) and its
// map elements. It is a value: two renderings of the same Service compare
// equal when nothing changed.
type ruleSet struct {
	chains   map[string][]string
	sets     map[string]int32
	elements map[string]element
}

func newRuleSet() *ruleSet {
	return &ruleSet{chains: map[string][]string{}, sets: map[string]int32{}, elements: map[string]element{}}
}

func (r *ruleSet) addElement(e element) { r.elements[e.id()] = e }

// renderOptions is the node-wide input to rule generation.
type renderOptions struct {
	// ClusterCIDR is the pods' CIDR: traffic to a cluster IP from outside it
	// is masqueraded (upstream's --cluster-cidr); "" masquerades none.
	ClusterCIDR string
}

// render is a pure function from one Service's ports to its rules.
func render(ports []servicePort, opt renderOptions) *ruleSet {
	rs := newRuleSet()
	for _, sp := range ports {
		proto := strings.ToLower(string(sp.name.Protocol))
		if len(sp.endpoints) == 0 {
			rs.addElement(element{noEndpointServices, []string{sp.clusterIP, proto, itoa(sp.port)}, "goto " + rejectChain})
			if sp.nodePort != 0 {
				rs.addElement(element{noEndpointNodePort, []string{proto, itoa(sp.nodePort)}, "goto " + rejectChain})
			}
			continue
		}
		// The cluster-policy chain balances over all endpoints, the local
		// one over this node's (traffic policy Local), as upstream.
		svcChain, local := serviceChain(sp.name), localChain(sp.name)
		needCluster := !sp.internalLocal || (sp.nodePort != 0)
		needLocal := (sp.internalLocal || sp.externalLocal) && len(sp.local) > 0
		if needCluster {
			var rules []string
			if opt.ClusterCIDR != "" {
				rules = append(rules, fmt.Sprintf("ip daddr %s %s dport %d ip saddr != %s jump %s", sp.clusterIP, proto, sp.port, opt.ClusterCIDR, markMasqChain))
			}
			rs.chains[svcChain] = append(rules, rs.balance(sp, sp.endpoints)...)
		}
		if needLocal {
			rs.chains[local] = rs.balance(sp, sp.local)
		}
		switch {
		case !sp.internalLocal:
			rs.addElement(element{serviceIPsMap, []string{sp.clusterIP, proto, itoa(sp.port)}, "goto " + svcChain})
		case needLocal:
			rs.addElement(element{serviceIPsMap, []string{sp.clusterIP, proto, itoa(sp.port)}, "goto " + local})
		default: // internalTrafficPolicy Local and no endpoint here: dropped
			rs.addElement(element{noEndpointServices, []string{sp.clusterIP, proto, itoa(sp.port)}, "drop"})
		}
		if sp.nodePort == 0 {
			continue
		}
		ext := externalChain(sp.name)
		switch {
		case !sp.externalLocal:
			rs.chains[ext] = []string{"jump " + markMasqChain, "goto " + svcChain}
		case needLocal:
			// externalTrafficPolicy Local: the client's address is kept and
			// only this node's endpoints serve; the node's own traffic goes
			// as for Cluster.
			rs.chains[ext] = []string{
				"fib saddr type local jump " + markMasqChain,
				"fib saddr type local goto " + svcChain,
				"goto " + local,
			}
		default:
			rs.addElement(element{noEndpointNodePort, []string{proto, itoa(sp.nodePort)}, "drop"})
			continue
		}
		rs.addElement(element{serviceNodePorts, []string{proto, itoa(sp.nodePort)}, "goto " + ext})
	}
	return rs
}

// balance is the rules that pick one of eps at random (or the client's
// earlier choice, with ClientIP affinity); it adds their endpoint chains.
func (rs *ruleSet) balance(sp servicePort, eps []endpoint) []string {
	proto := strings.ToLower(string(sp.name.Protocol))
	var rules, vmap []string
	for i, ep := range eps {
		epChain := endpointChain(sp.name, ep)
		if sp.affinity > 0 {
			set := affinitySet(sp.name, ep)
			rs.sets[set] = sp.affinity
			rules = append(rules, fmt.Sprintf("ip saddr @%s goto %s", set, epChain))
		}
		vmap = append(vmap, fmt.Sprintf("%d : goto %s", i, epChain))
		epRules := []string{fmt.Sprintf("ip saddr %s jump %s", ep.IP, markMasqChain)} // hairpin
		if sp.affinity > 0 {
			epRules = append(epRules, fmt.Sprintf("update @%s { ip saddr }", affinitySet(sp.name, ep)))
		}
		epRules = append(epRules, fmt.Sprintf("meta l4proto %s dnat to %s", proto, ep))
		rs.chains[epChain] = epRules
	}
	return append(rules, fmt.Sprintf("numgen random mod %d vmap { %s }", len(eps), strings.Join(vmap, " , ")))
}

// baseObjects adds the table and its fixed chains, maps and rules to tx.
// podCIDR is the node's pod CIDR ("" until known): its pods' traffic to
// outside clusterCIDR is masqueraded.
func baseObjects(tx *knftables.Transaction, opt renderOptions, podCIDR string) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff service proxy")})
	base := func(name string, t knftables.BaseChainType, hook knftables.BaseChainHook, prio knftables.BaseChainPriority, rules ...string) {
		tx.Add(&knftables.Chain{Name: name, Type: &t, Hook: &hook, Priority: &prio})
		for _, r := range rules {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}
	for _, m := range []struct{ name, typ string }{
		{serviceIPsMap, "ipv4_addr . inet_proto . inet_service : verdict"},
		{serviceNodePorts, "inet_proto . inet_service : verdict"},
		{noEndpointServices, "ipv4_addr . inet_proto . inet_service : verdict"},
		{noEndpointNodePort, "inet_proto . inet_service : verdict"},
	} {
		tx.Add(&knftables.Map{Name: m.name, Type: m.typ})
	}
	for _, c := range []string{servicesChain, markMasqChain, masqueradingChain, podEgressChain, endpointsCheck, rejectChain} {
		tx.Add(&knftables.Chain{Name: c})
	}
	add := func(chain string, rules ...string) {
		for _, r := range rules {
			tx.Add(&knftables.Rule{Chain: chain, Rule: r})
		}
	}
	add(servicesChain,
		"ip daddr . meta l4proto . th dport vmap @"+serviceIPsMap,
		"fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @"+serviceNodePorts)
	add(endpointsCheck,
		"ip daddr . meta l4proto . th dport vmap @"+noEndpointServices,
		"fib daddr type local meta l4proto . th dport vmap @"+noEndpointNodePort)
	add(markMasqChain, "mark set mark or "+masqMark)
	add(masqueradingChain,
		"mark and "+masqMark+" == 0 return",
		"mark set mark xor "+masqMark,
		"masquerade fully-random")
	add(rejectChain, "reject")
	podEgressRules(tx, opt, podCIDR)

	base("nat-prerouting", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority, "jump "+servicesChain)
	base("nat-output", knftables.NATType, knftables.OutputHook, knftables.DNATPriority, "jump "+servicesChain)
	base("nat-postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority,
		"jump "+masqueradingChain, "jump "+podEgressChain)
	// Before the filter priority, so a reject comes before anyone's accept.
	const early = knftables.FilterPriority + " - 10"
	// The agent lets pods be DNATed to the node's loopback (route_localnet
	// on the pod bridge, for the kubernetes Service of a loopback cluster);
	// as upstream's KUBE-FIREWALL, only DNATed traffic may reach loopback
	// addresses from elsewhere (CVE-2020-8558).
	base("filter-input", knftables.FilterType, knftables.InputHook, early,
		"ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8 ct state != { established, related } ct status ! dnat drop",
		"ct state new jump "+endpointsCheck)
	for _, h := range []knftables.BaseChainHook{knftables.ForwardHook, knftables.OutputHook} {
		base("filter-"+string(h), knftables.FilterType, h, early, "ct state new jump "+endpointsCheck)
	}
}

// podEgressRules (re)fills the pod-egress chain: pods reach outside the
// cluster through the node's address.
func podEgressRules(tx *knftables.Transaction, opt renderOptions, podCIDR string) {
	tx.Flush(&knftables.Chain{Name: podEgressChain})
	if podCIDR == "" {
		return
	}
	rule := "ip saddr " + podCIDR
	if opt.ClusterCIDR == "" || !cidrContains(opt.ClusterCIDR, podCIDR) {
		rule += " ip daddr != " + podCIDR
	}
	if opt.ClusterCIDR != "" {
		rule += " ip daddr != " + opt.ClusterCIDR
	}
	tx.Add(&knftables.Rule{Chain: podEgressChain, Rule: rule + " masquerade"})
}

// diff adds to tx what turns the kernel's rules for a set of Services from
// old into new (either may be nil for an absent Service), in an order the
// kernel accepts within one transaction: new chains and sets first, then
// rewritten chains, then map elements, then the chains and sets no longer
// referenced.
type diff struct {
	adds, fills, elemDel, elemAdd, chainDel, setDel []func(*knftables.Transaction)
}

func (d *diff) service(old, new *ruleSet) {
	if old == nil {
		old = newRuleSet()
	}
	if new == nil {
		new = newRuleSet()
	}
	for _, name := range slices.Sorted(maps.Keys(new.sets)) {
		timeout := new.sets[name]
		if _, ok := old.sets[name]; ok {
			continue
		}
		d.adds = append(d.adds, func(tx *knftables.Transaction) {
			tx.Add(&knftables.Set{
				Name: name, Type: "ipv4_addr",
				Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
				Timeout: knftables.PtrTo(time.Duration(timeout) * time.Second),
				Size:    knftables.PtrTo[uint64](65535),
			})
		})
	}
	for _, name := range slices.Sorted(maps.Keys(new.chains)) {
		rules := new.chains[name]
		oldRules, existed := old.chains[name]
		if existed && slices.Equal(oldRules, rules) {
			continue
		}
		if !existed {
			d.adds = append(d.adds, func(tx *knftables.Transaction) { tx.Add(&knftables.Chain{Name: name}) })
		}
		d.fills = append(d.fills, func(tx *knftables.Transaction) {
			if existed {
				tx.Flush(&knftables.Chain{Name: name})
			}
			for _, r := range rules {
				tx.Add(&knftables.Rule{Chain: name, Rule: r})
			}
		})
	}
	for _, id := range slices.Sorted(maps.Keys(old.elements)) {
		e := old.elements[id]
		if n, ok := new.elements[id]; ok && n.Value == e.Value {
			continue
		}
		d.elemDel = append(d.elemDel, func(tx *knftables.Transaction) {
			tx.Delete(&knftables.Element{Map: e.Map, Key: e.Key})
		})
	}
	for _, id := range slices.Sorted(maps.Keys(new.elements)) {
		e := new.elements[id]
		if o, ok := old.elements[id]; ok && o.Value == e.Value {
			continue
		}
		d.elemAdd = append(d.elemAdd, func(tx *knftables.Transaction) {
			tx.Add(&knftables.Element{Map: e.Map, Key: e.Key, Value: []string{e.Value}})
		})
	}
	for _, name := range slices.Sorted(maps.Keys(old.chains)) {
		if _, ok := new.chains[name]; ok {
			continue
		}
		d.chainDel = append(d.chainDel, func(tx *knftables.Transaction) {
			tx.Flush(&knftables.Chain{Name: name})
			tx.Delete(&knftables.Chain{Name: name})
		})
	}
	for _, name := range slices.Sorted(maps.Keys(old.sets)) {
		if _, ok := new.sets[name]; ok {
			continue
		}
		d.setDel = append(d.setDel, func(tx *knftables.Transaction) { tx.Delete(&knftables.Set{Name: name}) })
	}
}

// apply writes the diff into tx in the kernel's order; it reports whether
// there was anything to write.
func (d *diff) apply(tx *knftables.Transaction) bool {
	n := 0
	for _, phase := range [][]func(*knftables.Transaction){d.adds, d.fills, d.elemDel, d.elemAdd, d.chainDel, d.setDel} {
		for _, op := range phase {
			op(tx)
			n++
		}
	}
	return n > 0
}

// cidrContains reports whether CIDR outer holds CIDR inner.
func cidrContains(outer, inner string) bool {
	_, o, err1 := net.ParseCIDR(outer)
	ip, i, err2 := net.ParseCIDR(inner)
	if err1 != nil || err2 != nil {
		return false
	}
	ion, _ := i.Mask.Size()
	oon, _ := o.Mask.Size()
	return o.Contains(ip) && ion >= oon
}
