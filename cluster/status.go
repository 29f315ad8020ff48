package cluster

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// MemberStatus is one server as `skiff status` reports it.
type MemberStatus struct {
	Name         string `json:"name"`
	Role         string `json:"role"`
	RaftState    string `json:"raftState"` // Leader, Follower, or Unreachable
	APIURL       string `json:"apiURL"`
	Healthy      bool   `json:"healthy"` // /readyz answered ok
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	Lag          uint64 `json:"lag"` // the leader's applied index minus this one's
	Error        string `json:"error,omitempty"`
}

// Status is what `skiff status -o json` prints.
type Status struct {
	Leader  string         `json:"leader"`
	Members []MemberStatus `json:"members"`
}

// StatusTarget is a server to ask: its name, API URL and client config.
type StatusTarget struct {
	Name   string
	APIURL string
	Config *rest.Config
}

// CollectStatus asks every server for its health and Raft metrics.
func CollectStatus(ctx context.Context, targets []StatusTarget) Status {
	var st Status
	var leaderApplied uint64
	for _, t := range targets {
		m := MemberStatus{Name: t.Name, Role: "server", APIURL: t.APIURL, RaftState: "Unreachable"}
		hc, err := rest.HTTPClientFor(t.Config)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, rerr := getBody(cctx, hc, t.APIURL+"/readyz")
			m.Healthy = rerr == nil
			var vals map[string]float64
			vals, err = scrape(cctx, hc, t.APIURL+"/metrics")
			cancel()
			if err == nil {
				m.Term = uint64(vals["skiff_raftstore_raft_term"])
				m.CommitIndex = uint64(vals["skiff_raftstore_raft_commit_index"])
				m.AppliedIndex = uint64(vals["skiff_raftstore_applied_index"])
				m.RaftState = "Follower"
				if vals["skiff_raftstore_is_leader"] == 1 {
					m.RaftState = "Leader"
					st.Leader = t.Name
					leaderApplied = m.AppliedIndex
				}
			}
		}
		if err != nil {
			m.Error = err.Error()
		}
		st.Members = append(st.Members, m)
	}
	for i := range st.Members {
		if m := &st.Members[i]; m.RaftState == "Follower" && leaderApplied > m.AppliedIndex {
			m.Lag = leaderApplied - m.AppliedIndex
		}
	}
	return st
}

// scrape reads the unlabelled skiff_raftstore_* samples of a Prometheus text endpoint.
func scrape(ctx context.Context, hc *http.Client, url string) (map[string]float64, error) {
	body, err := getBody(ctx, hc, url)
	if err != nil {
		return nil, err
	}
	vals := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "skiff_raftstore_") {
			continue
		}
		name, v, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			vals[name] = f
		}
	}
	return vals, nil
}
