package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The real agents' side of the pod checks: what their containers did, seen from outside
// (the cgroup tree, not the agent or the API). A real agent puts each container in the
// cgroup <its --cgroup-root>/pod<pod uid>/<container id>, in every hierarchy, and names
// the container <pod uid>_<container name>_<attempt> (the kubelet's runtime names hold the
// same three). A container runs while its cgroup has a process.

// containerRun is one container seen running on a real agent, from its first sample to
// its last.
type containerRun struct {
	Node    string
	ID      string
	UID     types.UID
	Name    string
	Attempt int
	First   time.Time
	Last    time.Time
}

// parseContainerID splits the agent's container id <pod uid>_<container name>_<attempt>.
// Neither a UID nor a container name (a DNS label) has an underscore.
func parseContainerID(id string) (uid types.UID, name string, attempt int, ok bool) {
	parts := strings.Split(id, "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", 0, false
	}
	attempt, err := strconv.Atoi(parts[2])
	if err != nil {
		return "", "", 0, false
	}
	return types.UID(parts[0]), parts[1], attempt, true
}

// containerLog collects samples of the real agents' running containers: every run, and
// every time one pod's container ran twice at once (two container ids for the same pod and
// container name in one sample, on one node or on two).
type containerLog struct {
	mu      sync.Mutex
	runs    map[string]*containerRun // by node/id
	doubles []string
	seenDup map[string]bool // the pairs already reported
	samples int
	errs    int
	lastErr string
	current []*containerRun // running at the latest sample
}

func newContainerLog() *containerLog {
	return &containerLog{runs: map[string]*containerRun{}, seenDup: map[string]bool{}}
}

// observe records one sample taken at at: the container ids running on each node.
func (l *containerLog) observe(at time.Time, running map[string][]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.samples++
	l.current = l.current[:0]
	type key struct {
		uid  types.UID
		name string
	}
	byKey := map[key][]*containerRun{}
	for node, ids := range running {
		for _, id := range ids {
			uid, name, attempt, ok := parseContainerID(id)
			if !ok {
				continue // not a pod's container
			}
			r := l.runs[node+"/"+id]
			if r == nil {
				r = &containerRun{Node: node, ID: id, UID: uid, Name: name, Attempt: attempt, First: at}
				l.runs[node+"/"+id] = r
			}
			r.Last = at
			l.current = append(l.current, r)
			byKey[key{uid, name}] = append(byKey[key{uid, name}], r)
		}
	}
	for k, rs := range byKey {
		if len(rs) < 2 {
			continue
		}
		var where []string
		nodes := map[string]bool{}
		for _, r := range rs {
			where = append(where, r.Node+"/"+r.ID)
			nodes[r.Node] = true
		}
		sort.Strings(where)
		id := strings.Join(where, " ")
		if l.seenDup[id] {
			continue
		}
		l.seenDup[id] = true
		on := "on one node"
		if len(nodes) > 1 {
			on = "on two nodes"
		}
		l.doubles = append(l.doubles, fmt.Sprintf("pod %s container %s ran twice at once %s (%s) at %s", k.uid, k.name, on, id, at.UTC().Format("15:04:05.000")))
	}
}

func (l *containerLog) failed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs++
	l.lastErr = err.Error()
}

// snapshot copies every run, the double runs and the runs of the latest sample.
func (l *containerLog) snapshot() (runs []containerRun, doubles []string, current []containerRun) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.runs {
		runs = append(runs, *r)
	}
	for _, r := range l.current {
		current = append(current, *r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].First.Before(runs[j].First) })
	return runs, slices.Clone(l.doubles), current
}

// podFate is what the bench's watch and the API say of a pod, for the container checks.
type podFate struct {
	node     string    // the node the watch saw it bound to ("" if never)
	deleting time.Time // when the watch first saw it asked to terminate (or gone); zero if never
	present  bool      // in the API's final list of the namespace
}

// ContainerCheck is result.json's account of what the real agents ran.
type ContainerCheck struct {
	Agents         []string       `json:"agents"`
	Samples        int            `json:"samples"`
	SampleErrors   int            `json:"sample_errors,omitempty"`
	SampleError    string         `json:"last_sample_error,omitempty"`
	ListError      string         `json:"final_list_error,omitempty"`
	PodsBound      int            `json:"pods_bound"`   // pods the watch saw bound to a real agent
	PodsStarted    int            `json:"pods_started"` // pods seen running a container there
	PerAgent       map[string]int `json:"pods_started_per_agent"`
	Containers     int            `json:"containers_started"` // container ids seen running
	Restarts       int            `json:"container_restarts"` // of which attempt > 0
	NeverSeen      int            `json:"bound_never_seen_running"`
	MaxAfterDelete float64        `json:"max_run_after_deletion_ms"` // longest a container ran on after its pod's deletion was seen
	// DoubleRuns: one pod's container running twice at once (two container ids in one
	// sample). WrongNode: a pod's container on a node the watch saw it bound to no time.
	// Leftovers: containers of pods deleted (seen by the watch, or absent from the API)
	// still running at the end, after their grace period and a bound.
	DoubleRuns []string `json:"double_runs,omitempty"`
	WrongNode  []string `json:"ran_on_another_node,omitempty"`
	Leftovers  []string `json:"left_running_after_deletion,omitempty"`
}

// checkContainers judges the runs: double runs as observed, runs on a node the pod was not
// bound to, and containers still running at now (current) whose pod was deleted more than
// bound ago or is no longer in the API. fates has every pod the watch or the final list
// knows; realAgents names the nodes observed.
func checkContainers(realAgents []string, runs []containerRun, doubles []string, current []containerRun,
	fates map[types.UID]podFate, now time.Time, bound time.Duration) ContainerCheck {
	cc := ContainerCheck{Agents: slices.Clone(realAgents), PerAgent: map[string]int{}, DoubleRuns: slices.Clone(doubles)}
	started := map[types.UID]bool{}
	perAgent := map[string]map[types.UID]bool{}
	wrong := map[string]bool{}
	for _, r := range runs {
		cc.Containers++
		if r.Attempt > 0 {
			cc.Restarts++
		}
		started[r.UID] = true
		if perAgent[r.Node] == nil {
			perAgent[r.Node] = map[types.UID]bool{}
		}
		perAgent[r.Node][r.UID] = true
		f, known := fates[r.UID]
		if known && f.node != "" && f.node != r.Node && !wrong[r.Node+"/"+string(r.UID)] {
			wrong[r.Node+"/"+string(r.UID)] = true
			cc.WrongNode = append(cc.WrongNode, fmt.Sprintf("pod %s ran on %s, bound to %s", r.UID, r.Node, f.node))
		}
		if known && !f.deleting.IsZero() && r.Last.After(f.deleting) {
			cc.MaxAfterDelete = max(cc.MaxAfterDelete, ms(r.Last.Sub(f.deleting)))
		}
	}
	cc.PodsStarted = len(started)
	for n, pods := range perAgent {
		cc.PerAgent[n] = len(pods)
	}
	for uid, f := range fates {
		if slices.Contains(realAgents, f.node) {
			cc.PodsBound++
			if !started[uid] {
				cc.NeverSeen++
			}
		}
	}
	for _, r := range current {
		f, known := fates[r.UID]
		switch {
		case known && !f.deleting.IsZero() && now.Sub(f.deleting) > bound:
			cc.Leftovers = append(cc.Leftovers, fmt.Sprintf("%s/%s still running %.0fs after its pod's deletion", r.Node, r.ID, now.Sub(f.deleting).Seconds()))
		case known && f.deleting.IsZero() && !f.present:
			cc.Leftovers = append(cc.Leftovers, fmt.Sprintf("%s/%s still running, its pod no longer in the API", r.Node, r.ID))
		case !known:
			cc.Leftovers = append(cc.Leftovers, fmt.Sprintf("%s/%s still running, of a pod neither the watch nor the API knows", r.Node, r.ID))
		}
	}
	sort.Strings(cc.WrongNode)
	sort.Strings(cc.Leftovers)
	return cc
}

// deletedRunning counts the containers of current whose pod is deleted or gone: what the
// end of the run waits for.
func deletedRunning(current []containerRun, fates map[types.UID]podFate) int {
	n := 0
	for _, r := range current {
		if f, ok := fates[r.UID]; !ok || !f.deleting.IsZero() || !f.present {
			n++
		}
	}
	return n
}

// containerSampler reads the real agents' cgroup trees.
type containerSampler struct {
	roots map[string]string // node name to its --cgroup-root's directory in one hierarchy
	log   *containerLog
}

// cgroupMount is where the agents' cgroups are read: the unified hierarchy (cgroup v2), or
// on v1 the pids hierarchy (libcontainer puts every container in each one).
func cgroupMount() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "/sys/fs/cgroup"
	}
	for _, h := range []string{"pids", "memory", "cpu"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h, "cgroup.procs")); err == nil {
			return filepath.Join("/sys/fs/cgroup", h)
		}
	}
	return "/sys/fs/cgroup/pids"
}

func newContainerSampler(cgroupRoots map[string]string) *containerSampler {
	mount := cgroupMount()
	s := &containerSampler{roots: map[string]string{}, log: newContainerLog()}
	for node, root := range cgroupRoots {
		s.roots[node] = filepath.Join(mount, root)
	}
	return s
}

// sample lists, per node, the container ids whose cgroup has a process.
func (s *containerSampler) sample() (map[string][]string, error) {
	out := map[string][]string{}
	for node, root := range s.roots {
		pods, err := os.ReadDir(root)
		if errors.Is(err, fs.ErrNotExist) {
			continue // no pod yet
		}
		if err != nil {
			return nil, err
		}
		for _, p := range pods {
			if !p.IsDir() || !strings.HasPrefix(p.Name(), "pod") {
				continue
			}
			cs, err := os.ReadDir(filepath.Join(root, p.Name()))
			if err != nil {
				continue // removed while we read
			}
			for _, c := range cs {
				if c.IsDir() && cgroupBusy(filepath.Join(root, p.Name(), c.Name())) {
					out[node] = append(out[node], c.Name())
				}
			}
		}
	}
	// A container that exited just before its next attempt started may be read alive
	// before the new one is: read both again, so that a restart is not taken for a double
	// run.
	seen := map[string]int{}
	for _, ids := range out {
		for _, id := range ids {
			if uid, name, _, ok := parseContainerID(id); ok {
				seen[string(uid)+"/"+name]++
			}
		}
	}
	for node, ids := range out {
		out[node] = slices.DeleteFunc(ids, func(id string) bool {
			uid, name, _, ok := parseContainerID(id)
			if !ok || seen[string(uid)+"/"+name] < 2 {
				return false
			}
			return !cgroupBusy(filepath.Join(s.roots[node], "pod"+string(uid), id))
		})
	}
	return out, nil
}

// cgroupBusy reports whether a cgroup has a process (an exited one leaves it at exit, before
// it is reaped).
func cgroupBusy(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	return err == nil && len(strings.TrimSpace(string(b))) > 0
}

// run samples every interval until ctx ends.
func (s *containerSampler) run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		s.once()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *containerSampler) once() {
	at := time.Now()
	running, err := s.sample()
	if err != nil {
		s.log.failed(err)
		return
	}
	s.log.observe(at, running)
}

// containerStopBound is how long past its grace period a deleted pod's container may still
// run at the end: the agent hears of the deletion through its watch and stops the
// container with SIGTERM, then SIGKILL after the grace period; the rest is a loaded
// machine's slack.
const containerStopBound = 30 * time.Second

// checkRealContainers waits up to bound for the real agents' containers of deleted pods to
// stop, then judges what the agents ran (checkContainers). Each round samples the cgroups
// first and lists the pods second, so that a container seen running whose pod exists is
// in the list.
func checkRealContainers(ctx context.Context, s *containerSampler, pt *podTracker, cs kubernetes.Interface, real []string, bound time.Duration) ContainerCheck {
	deadline := time.Now().Add(bound)
	for {
		s.once()
		runs, doubles, current := s.log.snapshot()
		fates, listErr := finalFates(ctx, pt, cs)
		now := time.Now()
		if deletedRunning(current, fates) == 0 || now.After(deadline) || ctx.Err() != nil {
			cc := checkContainers(real, runs, doubles, current, fates, now, bound)
			s.log.mu.Lock()
			cc.Samples, cc.SampleErrors, cc.SampleError = s.log.samples, s.log.errs, s.log.lastErr
			s.log.mu.Unlock()
			if listErr != nil {
				cc.ListError = listErr.Error()
			}
			return cc
		}
		sleepCtx(ctx, time.Second)
	}
}

// finalFates is the watch's account of every pod, with present set from a list of the
// namespace (retried through the failover client). When no list succeeds every pod counts
// as present: only deletions the watch saw are judged.
func finalFates(ctx context.Context, pt *podTracker, cs kubernetes.Interface) (map[types.UID]podFate, error) {
	fates := pt.fates()
	var err error
	for try := 0; try < 3; try++ {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var list *corev1.PodList
		list, err = cs.CoreV1().Pods(chaosNS).List(lctx, metav1.ListOptions{})
		cancel()
		if err == nil {
			for _, p := range list.Items {
				f := fates[p.UID]
				f.present = true
				if f.node == "" {
					f.node = p.Spec.NodeName
				}
				fates[p.UID] = f
			}
			return fates, nil
		}
		sleepCtx(ctx, time.Second)
	}
	for uid, f := range fates {
		f.present = true
		fates[uid] = f
	}
	return fates, err
}

// failures are the container checks that failed. A run whose real agents ran no pod, or
// whose cgroups could not be read, checked nothing there and fails too.
func (cc ContainerCheck) failures() []string {
	var out []string
	if len(cc.DoubleRuns) > 0 {
		out = append(out, fmt.Sprintf("%d pod containers ran twice at once on real agents: %s", len(cc.DoubleRuns), strings.Join(first(cc.DoubleRuns, 5), "; ")))
	}
	if len(cc.WrongNode) > 0 {
		out = append(out, fmt.Sprintf("%d pods ran on a real agent they were not bound to: %s", len(cc.WrongNode), strings.Join(first(cc.WrongNode, 5), "; ")))
	}
	if len(cc.Leftovers) > 0 {
		out = append(out, fmt.Sprintf("%d containers of deleted pods still running on real agents: %s", len(cc.Leftovers), strings.Join(first(cc.Leftovers, 5), "; ")))
	}
	if cc.PodsStarted == 0 {
		out = append(out, fmt.Sprintf("the real agents (%s) ran no pod (%d bound there, %d samples, %d sample errors %s)",
			strings.Join(cc.Agents, ", "), cc.PodsBound, cc.Samples, cc.SampleErrors, cc.SampleError))
	}
	return out
}

// perAgent formats pods started per agent, in name order.
func perAgent(m map[string]int) string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, m[n]))
	}
	return strings.Join(parts, ", ")
}

// running is how many containers the latest sample saw.
func (l *containerLog) running() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.current)
}
