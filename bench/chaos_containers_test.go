package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestContainerLogCatchesAContainerRunTwiceAtOnce(t *testing.T) {
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	l := newContainerLog()
	// u1 restarts (attempt 0 exits, then attempt 1 runs): never both at once.
	l.observe(at(0), map[string][]string{"a": {"u1_main_0", "u2_main_0"}})
	l.observe(at(1), map[string][]string{"a": {"u1_main_1", "u2_main_0", "not-a-pod"}})
	if _, doubles, _ := l.snapshot(); len(doubles) != 0 {
		t.Fatalf("a restart taken for a double run: %v", doubles)
	}
	// u2's next attempt starts while the first still runs: the bug.
	l.observe(at(2), map[string][]string{"a": {"u1_main_1", "u2_main_0", "u2_main_1"}})
	l.observe(at(3), map[string][]string{"a": {"u1_main_1", "u2_main_0", "u2_main_1"}}) // the same pair: once
	// u3 on two nodes at once.
	l.observe(at(4), map[string][]string{"a": {"u3_main_0"}, "b": {"u3_main_0"}})
	runs, doubles, current := l.snapshot()
	if len(doubles) != 2 || !strings.Contains(doubles[0], "u2") || !strings.Contains(doubles[0], "on one node") ||
		!strings.Contains(doubles[1], "u3") || !strings.Contains(doubles[1], "on two nodes") {
		t.Fatalf("double runs = %q, want u2 on one node, then u3 on two", doubles)
	}
	if len(runs) != 6 {
		t.Fatalf("%d runs, want 6 (two of u1, two of u2, u3 on a and on b): %+v", len(runs), runs)
	}
	for _, r := range runs {
		if r.ID == "u2_main_0" && (!r.First.Equal(at(0)) || !r.Last.Equal(at(3))) {
			t.Fatalf("u2_main_0 seen %v..%v, want 0s..3s", r.First.Sub(t0), r.Last.Sub(t0))
		}
	}
	if len(current) != 2 {
		t.Fatalf("current = %+v, want u3 on a and b", current)
	}
}

func TestContainerCheckCatchesLeftoversAndAPodOnTheWrongNode(t *testing.T) {
	now := time.Now()
	bound := 35 * time.Second
	run := func(node, uid string, attempt int, first, last time.Duration) containerRun {
		return containerRun{Node: node, ID: uid + "_main_0", UID: types.UID(uid), Name: "main", Attempt: attempt,
			First: now.Add(-first), Last: now.Add(-last)}
	}
	fates := map[types.UID]podFate{
		"done":    {node: "r", deleting: now.Add(-100 * time.Second)},               // deleted, stopped in time
		"running": {node: "r", present: true},                                       // still wanted
		"late":    {node: "r", deleting: now.Add(-60 * time.Second), present: true}, // asked to go a minute ago
		"recent":  {node: "r", deleting: now.Add(-10 * time.Second), present: true}, // within its bound
		"missed":  {node: "r"},                                                      // gone from the API, deletion unseen
		"moved":   {node: "h", present: true},                                       // bound to a hollow node
		"never":   {node: "r", deleting: now.Add(-50 * time.Second)},                // bound, deleted before it started
		"hollow":  {node: "h", present: true},
	}
	done := run("r", "done", 0, 200*time.Second, 98*time.Second)
	running := run("r", "running", 0, 100*time.Second, 0)
	late := run("r", "late", 0, 100*time.Second, 0)
	recent := run("r", "recent", 0, 100*time.Second, 0)
	missed := run("r", "missed", 0, 100*time.Second, 0)
	moved := run("r", "moved", 0, 100*time.Second, 90*time.Second)
	stranger := run("r", "stranger", 0, 5*time.Second, 0)
	runs := []containerRun{done, running, late, recent, missed, moved, stranger}
	current := []containerRun{running, late, recent, missed, stranger}

	cc := checkContainers([]string{"r"}, runs, nil, current, fates, now, bound)
	if len(cc.Leftovers) != 3 || !strings.Contains(cc.Leftovers[0], "late") || !strings.Contains(cc.Leftovers[1], "missed") ||
		!strings.Contains(cc.Leftovers[2], "stranger") {
		t.Fatalf("leftovers = %q, want late (60s after its deletion), missed (not in the API), stranger (unknown)", cc.Leftovers)
	}
	if len(cc.WrongNode) != 1 || !strings.Contains(cc.WrongNode[0], "moved") {
		t.Fatalf("wrong node = %q, want moved", cc.WrongNode)
	}
	if cc.PodsStarted != 7 || cc.Containers != 7 || cc.PodsBound != 6 || cc.NeverSeen != 1 || cc.PerAgent["r"] != 7 {
		t.Fatalf("counts: %+v", cc)
	}
	// "late" ran on 60 s past its deletion (up to now): the longest.
	if cc.MaxAfterDelete != 60000 {
		t.Fatalf("longest run past a deletion = %.0f ms, want 60000", cc.MaxAfterDelete)
	}
	if fl := cc.failures(); len(fl) != 2 {
		t.Fatalf("failures = %q, want leftovers and wrong node", fl)
	}
	if n := deletedRunning(current, fates); n != 4 {
		t.Fatalf("deleted and running = %d, want 4 (late, recent, missed, stranger)", n)
	}

	clean := checkContainers([]string{"r"}, []containerRun{done, running}, nil, []containerRun{running}, fates, now, bound)
	if fl := clean.failures(); len(fl) != 0 {
		t.Fatalf("a clean run failed: %q", fl)
	}
	if fl := checkContainers([]string{"r"}, nil, nil, nil, fates, now, bound).failures(); len(fl) != 1 || !strings.Contains(fl[0], "ran no pod") {
		t.Fatalf("a real agent that ran nothing passed: %q", fl)
	}
	withDouble := checkContainers([]string{"r"}, []containerRun{running}, []string{"pod running container main ran twice"}, nil, fates, now, bound)
	if fl := withDouble.failures(); len(fl) != 1 || !strings.Contains(fl[0], "twice") {
		t.Fatalf("a double run passed: %q", fl)
	}
}

// TestContainerSamplerReadsTheAgentsCgroups: a container runs while its cgroup
// (<root>/pod<uid>/<id>) has a process; an empty cgroup left behind is not running.
func TestContainerSamplerReadsTheAgentsCgroups(t *testing.T) {
	root := t.TempDir()
	cg := func(uid, id, procs string) {
		dir := filepath.Join(root, "pod"+uid, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(procs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cg("u1", "u1_main_0", "123\n124\n")
	cg("u1", "u1_side_0", "")      // exited
	cg("u2", "u2_main_0", "200\n") // both attempts alive: a double run
	cg("u2", "u2_main_1", "201\n")
	s := &containerSampler{roots: map[string]string{"r": root, "empty": filepath.Join(root, "absent")}, log: newContainerLog()}
	got, err := s.sample()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got["r"])
	if want := []string{"u1_main_0", "u2_main_0", "u2_main_1"}; !slices.Equal(got["r"], want) || len(got["empty"]) != 0 {
		t.Fatalf("running = %v, want %v on r and nothing on an agent without pods", got, want)
	}
	s.once()
	if _, doubles, _ := s.log.snapshot(); len(doubles) != 1 {
		t.Fatalf("double runs = %q, want u2's", doubles)
	}
}
