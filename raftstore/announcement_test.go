package raftstore

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestAnnouncement: the commit index a follower is told of in an empty append, and when
// none is sent.
func TestAnnouncement(t *testing.T) {
	sent := emptyAfter(&raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 7, PrevLogTerm: 3,
		Entries: []*raft.Log{{Index: 8, Term: 3}, {Index: 9, Term: 3}}})
	leading := leaderView{commit: 9, leader: true, term: 3}
	cases := []struct {
		name   string
		next   *raft.AppendEntriesRequest
		told   uint64
		view   leaderView
		commit uint64 // 0: nothing sent
	}{
		{"everything sent is committed", sent, 7, leading, 9},
		{"committed past what was sent: only up to the last entry sent", sent, 7, leaderView{commit: 12, leader: true, term: 3}, 9},
		{"entries still in flight", sent, 7, leaderView{commit: 8, leader: true, term: 3}, 0},
		{"already told", sent, 9, leading, 0},
		{"nothing sent on the pipeline yet", nil, 0, leading, 0},
		{"no longer leading", sent, 7, leaderView{commit: 9, leader: false, term: 3}, 0},
		{"leading again, in a later term than the append's", sent, 7, leaderView{commit: 9, leader: true, term: 4}, 0},
	}
	for _, c := range cases {
		got, ok := announcement(c.next, c.told, c.view)
		if ok != (c.commit != 0) || got != c.commit {
			t.Errorf("%s: announced %d (%v), want %d", c.name, got, ok, c.commit)
		}
	}
	if sent.PrevLogEntry != 9 || sent.PrevLogTerm != 3 || sent.Term != 3 || len(sent.Entries) != 0 {
		t.Errorf("the append after entries 8-9 of term 3: %+v", sent)
	}
}
