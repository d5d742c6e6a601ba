package loadtest

import (
	"math"
	"slices"
)

// Percentiles of a sample in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentiles computes nearest-rank percentiles of xs (which it sorts).
func percentiles(xs []float64) Percentiles {
	if len(xs) == 0 {
		return Percentiles{}
	}
	slices.Sort(xs)
	at := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(xs)))) - 1
		return round3(xs[max(i, 0)])
	}
	return Percentiles{P50: at(50), P95: at(95), P99: at(99), Max: round3(xs[len(xs)-1])}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// seqSet remembers which sequence numbers arrived, to count each frame once and notice duplicates.
type seqSet struct{ bits []uint64 }

// add records seq and reports whether it is new.
func (s *seqSet) add(seq uint32) bool {
	w := int(seq / 64)
	if w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, w-len(s.bits)+1)...)
	}
	bit := uint64(1) << (seq % 64)
	if s.bits[w]&bit != 0 {
		return false
	}
	s.bits[w] |= bit
	return true
}
