package dispatch

import (
	"fmt"
	"testing"
)

func edges(n int) []Candidate {
	var cs []Candidate
	for i := range n {
		cs = append(cs, Candidate{ID: fmt.Sprintf("e%d", i), Region: "eu"})
	}
	return cs
}

func ids(cs []Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestPickThreeDistinctWithAffinity(t *testing.T) {
	cs := edges(6)
	first := Pick(cs, "app", "room", nil, 3)
	if len(first) != 3 || first[0].ID == first[1].ID || first[1].ID == first[2].ID || first[0].ID == first[2].ID {
		t.Fatalf("Pick = %v", ids(first))
	}
	// Every dispatcher, in any order of candidates, picks the same primary for the channel.
	reversed := append([]Candidate(nil), cs...)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	if again := Pick(reversed, "app", "room", nil, 3); fmt.Sprint(ids(again)) != fmt.Sprint(ids(first)) {
		t.Errorf("order-dependent: %v vs %v", ids(again), ids(first))
	}
	// Channels spread over the edges.
	primaries := map[string]int{}
	for i := range 600 {
		primaries[Pick(cs, "app", fmt.Sprint("ch", i), nil, 1)[0].ID]++
	}
	for _, c := range cs {
		if n := primaries[c.ID]; n < 60 || n > 140 {
			t.Errorf("edge %s is primary for %d of 600 channels", c.ID, n)
		}
	}
	// A placed edge wins over the hash order.
	placed := first[2].ID
	if got := Pick(cs, "app", "room", []string{placed}, 3); got[0].ID != placed {
		t.Errorf("placed %s, primary %s", placed, got[0].ID)
	}
}

func TestPickSkipsDrainingAndOverloaded(t *testing.T) {
	cs := edges(4)
	primary := Pick(cs, "app", "room", nil, 1)[0].ID
	for i := range cs {
		if cs[i].ID == primary {
			cs[i].Draining = true
		}
	}
	got := Pick(cs, "app", "room", []string{primary}, 3)
	if len(got) != 3 {
		t.Fatalf("Pick = %v", ids(got))
	}
	for _, c := range got {
		if c.ID == primary {
			t.Errorf("draining edge %s picked", primary)
		}
	}
	cs[0].Load, cs[1].Load, cs[2].Load, cs[3].Load = 0.95, 0.95, 0.95, 0.2
	if got := Pick(cs, "app", "room", nil, 3); len(got) != 1 || got[0].ID != "e3" {
		t.Errorf("with three busy edges and one draining: %v", ids(got))
	}
	if got := Pick(nil, "app", "room", nil, 3); len(got) != 0 {
		t.Errorf("no edges: %v", ids(got))
	}
}

func BenchmarkPick(b *testing.B) {
	cs := edges(20)
	b.ReportAllocs()
	for b.Loop() {
		Pick(cs, "app", "room", nil, 3)
	}
}
