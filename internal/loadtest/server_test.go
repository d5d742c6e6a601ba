package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint64
		ok   bool
	}{
		{"plain", "4242 (stoa) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 567 0 0 20 0 12 0 100 0 0", 1801, true},
		{"spaces and parens in the name", "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5", 30, true},
		{"short", "7 (x) R 1 7 7 0", 0, false},
		{"no name", "7 x R 1 7 7 0 -1 0 0 0 0 0 10 20", 0, false},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 ten 20 0", 0, false},
		{"negative", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 -1 20 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.in))
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseStatCPU = %d, %v; want %d, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseStatusRSS(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint64
		ok   bool
	}{
		{"status", "Name:\tstoa\nVmHWM:\t  200 kB\nVmRSS:\t  123456 kB\nRssAnon:\t 1 kB\n", 123456, true},
		{"last line without newline", "Name:\tx\nVmRSS:\t 42 kB", 42, true},
		{"missing (kernel thread)", "Name:\tkthreadd\nState:\tS\n", 0, false},
		{"other unit", "VmRSS:\t 42 MB\n", 0, false},
		{"not a number", "VmRSS:\t lots kB\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusRSS([]byte(tt.in))
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseStatusRSS = %d, %v; want %d, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseStatCPU: any input gives a figure or an error, and a well-formed line with the fuzzed name and times
// gives back their sum.
func FuzzParseStatCPU(f *testing.F) {
	f.Add("stoa", uint32(1234), uint32(567))
	f.Add("a) b (c", uint32(0), uint32(0))
	f.Add(")", uint32(1<<31), uint32(1))
	f.Fuzz(func(t *testing.T, name string, utime, stime uint32) {
		_, _ = parseStatCPU([]byte(name))
		_, _ = parseStatusRSS([]byte(name))
		if bytes.ContainsAny([]byte(name), "\x00") {
			return
		}
		line := fmt.Sprintf("1 (%s) S 1 1 1 0 -1 0 0 0 0 0 %d %d 0 0 20 0 1 0 1\n", name, utime, stime)
		got, err := parseStatCPU([]byte(line))
		if err != nil || got != uint64(utime)+uint64(stime) {
			t.Fatalf("parseStatCPU(%q) = %d, %v; want %d", line, got, err, uint64(utime)+uint64(stime))
		}
	})
}

// TestServerMeterOwnProcess samples this test's process while it burns CPU and holds memory: the figures must
// see both.
func TestServerMeterOwnProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	m, err := newServerMeter(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	hold := make([]byte, 64<<20)
	for i := range hold {
		hold[i] = byte(i)
	}
	// Burn at least 200 ms of CPU (20 ticks), measured by the process itself.
	start := cpuTime()
	x := 0
	for cpuTime()-start < 200*time.Millisecond {
		for i := range 100000 {
			x += i * len(strconv.Itoa(i))
		}
	}
	m.sample()
	res := Result{FramesReceived: 1000}
	m.result(&res)
	if res.ServerCPUSeconds < 0.1 || res.ServerCPUPer1kFrames != res.ServerCPUSeconds {
		t.Errorf("server CPU %.3f s, %.3f s per 1k frames; want ≥ 0.1 s, and equal (1000 frames) (x=%d)",
			res.ServerCPUSeconds, res.ServerCPUPer1kFrames, x)
	}
	if res.ServerRSSMB < 64 || res.ServerCPUPercent <= 0 {
		t.Errorf("server RSS %.1f MB, CPU %.1f %%; want ≥ 64 MB held, > 0 %%", res.ServerRSSMB, res.ServerCPUPercent)
	}
	runtime.KeepAlive(hold)

	if _, err := newServerMeter(-1); err == nil {
		t.Error("newServerMeter(-1) succeeded")
	}
}
