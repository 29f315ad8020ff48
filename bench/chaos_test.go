package bench

import (
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestFaultScheduleIsReproducibleFromTheSeed(t *testing.T) {
	a := planFaults(42, AllFaults, 5*time.Minute, 20)
	b := planFaults(42, AllFaults, 5*time.Minute, 20)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different schedules")
	}
	if c := planFaults(43, AllFaults, 5*time.Minute, 20); slices.Equal(a, c) {
		t.Fatal("different seeds, same schedule")
	}
	kinds := map[string]int{}
	for i, f := range a {
		kinds[f.Kind]++
		if i > 0 && f.At <= a[i-1].At {
			t.Fatalf("fault %d at %v is not after %v", i, f.At, a[i-1].At)
		}
	}
	if kinds[FaultKillLeader] < 20 {
		t.Fatalf("%d leader kills, want at least 20", kinds[FaultKillLeader])
	}
	for _, k := range AllFaults {
		if kinds[k] == 0 {
			t.Fatalf("no %s in the schedule: %v", k, kinds)
		}
	}
}

func TestUnavailabilityIsTheGapAroundTheFault(t *testing.T) {
	s := time.Second
	log := successLog{
		"a": {1 * s, 2 * s, 5 * s, 6 * s},             // killed: back at 5s
		"b": {1 * s, 2*s + s/2, 3*s + s/2, 4 * s},     // spared: 1s gap around 3s
		"c": {1 * s, 2*s + s/4, 3*s + s/4, 3*s + s/2}, // spared: 1s gap
	}
	worst, per := unavailability(log, 3*s, 10*s, []string{"a"})
	if worst != s {
		t.Fatalf("worst = %v, want 1s (the spared servers' gap)", worst)
	}
	if per["a"] != 3*s {
		t.Fatalf("the killed server's gap = %v, want 3s", per["a"])
	}
	if worst, _ := unavailability(log, 3*s, 10*s, []string{"a", "b", "c"}); worst != 3*s {
		t.Fatalf("all targeted: worst = %v, want 3s", worst)
	}
	withDead := successLog{
		"a": {9 * s, 12 * s},
		"b": {9*s + s/2, 11 * s},
		"d": {s / 2}, // left dead by an earlier fault: says nothing about this one
	}
	if worst, _ := unavailability(withDead, 10*s, 20*s, []string{"a"}); worst != s+s/2 {
		t.Fatalf("with a server long dead: worst = %v, want 1.5s (b's gap)", worst)
	}
	if d, ok := gap([]time.Duration{s}, 2*s, 10*s); ok || d != 9*s {
		t.Fatalf("never recovered: gap = %v %v, want 9s false", d, ok)
	}
	if p := percentile([]time.Duration{5, 1, 3, 2, 4}, 0.5); p != 3 {
		t.Fatalf("median = %v", p)
	}
}

func op(client int, call, ret int64, in regInput, out regOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
}

func TestCheckerAcceptsALinearizableHistory(t *testing.T) {
	h := []porcupine.Operation{
		op(1, 0, 10, regInput{Op: "cas", Key: "k", Value: "a"}, regOutput{OK: true}),
		op(2, 5, 15, regInput{Op: "get", Key: "k"}, regOutput{Value: "a"}),
		op(2, 20, 30, regInput{Op: "cas", Key: "k", Value: "b", Expect: "a"}, regOutput{OK: true}),
		op(1, 25, 35, regInput{Op: "cas", Key: "k", Value: "c", Expect: "a"}, regOutput{}), // conflict
		op(3, 36, unknownReturn, regInput{Op: "cas", Key: "k", Value: "d", Expect: "b"}, regOutput{Unknown: true}),
		op(1, 40, 50, regInput{Op: "get", Key: "k"}, regOutput{Value: "b"}),
	}
	chk := checkRegister(h, map[string]string{"k": "b"}, 10*time.Second)
	if chk.Result != porcupine.Ok || len(chk.LostWrites) != 0 {
		t.Fatalf("result %s, lost %v", chk.Result, chk.LostWrites)
	}
	if chk.Dropped != 1 {
		t.Fatalf("dropped %d unobserved unknown writes, want 1", chk.Dropped)
	}
}

func TestCheckerRejectsAStaleReadAndALostWrite(t *testing.T) {
	h := []porcupine.Operation{
		op(1, 0, 10, regInput{Op: "cas", Key: "k", Value: "a"}, regOutput{OK: true}),
		op(1, 20, 30, regInput{Op: "cas", Key: "k", Value: "b", Expect: "a"}, regOutput{OK: true}),
		op(2, 40, 50, regInput{Op: "get", Key: "k"}, regOutput{Value: "a"}), // stale: b was acknowledged
	}
	chk := checkRegister(h, map[string]string{"k": "a"}, 10*time.Second)
	if chk.Result != porcupine.Illegal {
		t.Fatalf("a stale read passed: %s", chk.Result)
	}
	if len(chk.LostWrites) != 1 {
		t.Fatalf("lost writes %v, want the write of b", chk.LostWrites)
	}
}
