package bench

import (
	"net/http"
	"net/url"
	"sync/atomic"

	"k8s.io/client-go/rest"
)

// failoverConfig returns a client config that sends each request to the current one of the
// given servers (API URLs; they share the cluster CA and the admin credentials) and moves
// on to the next after a transport error or a 5xx: the pod watch and the churn workload
// must outlive any one server's death or isolation, as kubectl behind a load balancer would.
func failoverConfig(base *rest.Config, servers []string) *rest.Config {
	cfg := rest.CopyConfig(base)
	cfg.QPS, cfg.Burst = 1e5, 1e5
	var hosts []string
	for _, s := range servers {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			hosts = append(hosts, u.Host)
		}
	}
	f := &failover{hosts: hosts}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { f.rt = rt; return f })
	return cfg
}

type failover struct {
	hosts []string
	cur   atomic.Uint32
	rt    http.RoundTripper
}

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(f.hosts) == 0 {
		return f.rt.RoundTrip(req)
	}
	i := f.cur.Load()
	r := req.Clone(req.Context())
	r.URL.Host = f.hosts[int(i)%len(f.hosts)]
	r.Host = ""
	resp, err := f.rt.RoundTrip(r)
	if err != nil || resp.StatusCode >= 500 {
		f.cur.CompareAndSwap(i, i+1)
	}
	return resp, err
}
