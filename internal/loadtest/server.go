package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"
)

// Server-side figures (Config.ServerPID): the CPU time and resident memory of the server process, read from
// Linux's /proc during the measured phase, so that a run reports what the server paid for the frames it delivered.

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which Linux fixes at 100 for this interface on
// every architecture Go supports.
const userHZ = 100

// procSample is one reading of a process.
type procSample struct {
	cpu   time.Duration // user + system time since the process started
	rssKB uint64        // resident set size
}

var errProcFormat = errors.New("loadtest: unexpected /proc format")

// readProc reads the CPU time and resident memory of process pid.
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("loadtest: server process: %w", err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("loadtest: server process: %w", err)
	}
	ticks, err := parseStatCPU(stat)
	if err != nil {
		return procSample{}, err
	}
	rss, err := parseStatusRSS(status)
	if err != nil {
		return procSample{}, err
	}
	return procSample{cpu: time.Duration(ticks) * time.Second / userHZ, rssKB: rss}, nil
}

// parseStatCPU returns utime + stime, in clock ticks, from the contents of /proc/PID/stat (proc(5)): fields 14 and
// 15, counted from 1. The command name (field 2) is in parentheses and may itself hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseStatCPU(b []byte) (uint64, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, errProcFormat
	}
	fields := bytes.Fields(b[end+1:]) // fields[0] is field 3, the state
	if len(fields) < 13 {
		return 0, errProcFormat
	}
	utime, err1 := strconv.ParseUint(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil || utime > 1<<62 || stime > 1<<62 {
		return 0, errProcFormat
	}
	return utime + stime, nil
}

// parseStatusRSS returns VmRSS, in kB, from the contents of /proc/PID/status ("VmRSS:\t  1234 kB").
func parseStatusRSS(b []byte) (uint64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, errProcFormat
		}
		return strconv.ParseUint(string(f[0]), 10, 64)
	}
	return 0, errProcFormat
}

// serverMeter samples a server process during the measured phase: at its start, every second, and at its end.
// Its methods run on Run's goroutine.
type serverMeter struct {
	pid       int
	first     procSample
	firstAt   time.Time
	last      procSample
	lastAt    time.Time
	perSecond []float64 // CPU % of one core between consecutive samples
	maxRSSKB  uint64
}

func newServerMeter(pid int) (*serverMeter, error) {
	s, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &serverMeter{pid: pid, first: s, firstAt: now, last: s, lastAt: now, maxRSSKB: s.rssKB}, nil
}

// sample takes a reading; a process that has gone away leaves the figures as they were.
func (m *serverMeter) sample() {
	s, err := readProc(m.pid)
	if err != nil {
		return
	}
	now := time.Now()
	if dt := now.Sub(m.lastAt); dt >= time.Second/2 { // shorter intervals are too coarse for 10 ms ticks
		m.perSecond = append(m.perSecond, 100*(s.cpu-m.last.cpu).Seconds()/dt.Seconds())
	}
	m.last, m.lastAt = s, now
	m.maxRSSKB = max(m.maxRSSKB, s.rssKB)
}

// result fills the server fields of res, whose FramesReceived is final.
func (m *serverMeter) result(res *Result) {
	cpu := m.last.cpu - m.first.cpu
	wall := m.lastAt.Sub(m.firstAt)
	res.ServerCPUSeconds = round3(cpu.Seconds())
	if len(m.perSecond) > 0 {
		res.ServerCPUPercent = round3(median(m.perSecond))
	} else if wall > 0 {
		res.ServerCPUPercent = round3(100 * cpu.Seconds() / wall.Seconds())
	}
	if res.FramesReceived > 0 {
		res.ServerCPUPer1kFrames = round3(1000 * cpu.Seconds() / float64(res.FramesReceived))
	}
	res.ServerRSSMB = round3(float64(m.maxRSSKB) / 1024)
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
