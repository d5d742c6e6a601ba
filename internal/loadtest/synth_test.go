package loadtest

import (
	"errors"
	"testing"
)

func TestSyntheticFrames(t *testing.T) {
	m := Marker{Counted: true, Channel: 3, Publisher: 2, Seq: 70000, Sent: 123456789}
	for _, tc := range []struct {
		frame  []byte
		header int
	}{
		{AudioFrame(m), 1},
		{VideoFrame(m, true), VideoHeaderLen(VideoFrame(m, true))},
		{VideoFrame(m, false), VideoHeaderLen(VideoFrame(m, false))},
		{DataMessage(m), 0},
	} {
		got, err := ParseFrame(tc.frame, tc.header)
		if err != nil || got != m {
			t.Errorf("ParseFrame = %+v %v, want %+v", got, err, m)
		}
		tc.frame[len(tc.frame)-1]++
		if _, err := ParseFrame(tc.frame, tc.header); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a changed byte went unnoticed")
		}
	}
	if VideoHeaderLen(VideoFrame(m, true)) != 10 || VideoHeaderLen(VideoFrame(m, false)) != 3 {
		t.Error("VP8 clear prefix lengths")
	}
}

func TestPercentilesAndSeqSet(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i)
	}
	p := percentiles(xs)
	if p.P50 != 50 || p.P95 != 95 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("percentiles %+v", p)
	}
	var s seqSet
	if !s.add(5) || s.add(5) || !s.add(1000) || !s.add(0) {
		t.Error("seqSet")
	}
}
