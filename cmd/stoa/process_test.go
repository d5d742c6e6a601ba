package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/calltest"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/token"
)

// proc is a stoa process started by a test.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and been reaped
	mu     sync.Mutex
	lines  []string
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = nil // logs are not needed; os/exec discards them
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		p.cmd.Wait() // after the output is read, as os/exec requires
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitLine waits for a line matching re and returns its submatches.
func (p *proc) waitLine(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := rx.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m
			}
		}
		p.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line matching %q from %v", re, p.cmd.Args)
	return nil
}

// Separate stoa processes: a bus (stoa dev), two standalone edges and a dispatcher. The edge that carries a call
// is killed with SIGKILL mid-call, several times; each time the subscriber's media resumes on the backup edge.
func TestProcessesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts processes")
	}
	bin := filepath.Join(t.TempDir(), "stoa")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := t.TempDir()
	dev := startProc(t, bin, "dev", "--listen", "127.0.0.1:0", "--data", data, "--regions", "home:1", "--log-level", "error")
	appID := dev.waitLine(t, `app id:\s+(\S+)`)[1]
	appCert := dev.waitLine(t, `app cert:\s+(\S+)`)[1]
	nats := dev.waitLine(t, `nats:\s+(\S+)`)[1]
	projectKey := dev.waitLine(t, `projects:\s+signed with key (\S+)`)[1] // the standalone nodes trust only it
	openKey := dev.waitLine(t, `--project-open-key (\S+)\)`)[1]           // and open the certificates with its key
	// Region eu is not stoa dev's: its nodes get credentials for it from dev's bus authority.
	creds := map[string]string{}
	for _, role := range []string{"edge", "dispatch"} {
		creds[role] = filepath.Join(data, "eu-"+role+".creds")
		if out, err := exec.Command(bin, "bus", "issue", "--dir", filepath.Join(data, "nats"), "--role", role, "--region", "eu",
			"--any-id", "--out", creds[role]).CombinedOutput(); err != nil {
			t.Fatalf("bus issue: %v\n%s", err, out)
		}
	}

	edges := map[string]*proc{}
	startEdge := func(id string) {
		p := startProc(t, bin, "edge", "--nats", nats, "--nats-creds", creds["edge"], "--region", "eu", "--listen", "127.0.0.1:0", "--id", id, "--log-level", "error",
			"--project-keys", projectKey, "--project-open-key", openKey)
		p.waitLine(t, `ready.*id=`+id)
		edges[id] = p
	}
	startEdge("eu-0")
	startEdge("eu-1")
	disp := startProc(t, bin, "dispatch", "--nats", nats, "--nats-creds", creds["dispatch"], "--region", "eu", "--listen", "127.0.0.1:0", "--log-level", "error",
		"--project-keys", projectKey, "--project-open-key", openKey)
	url := disp.waitLine(t, `ready.*url=(\S+)`)[1]

	var gaps []time.Duration
	for trial := range 3 {
		channel := "kill-" + string(rune('a'+trial))
		waitScheduled(t, url, appID, appCert, channel, slices.Sorted(maps.Keys(edges)))
		c := calltest.Start(t, func(uid string) sdk.Config {
			tok, err := token.BuildRTC(appCert, token.RTCOptions{AppID: appID, Channel: channel, UID: uid, Expire: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return sdk.Config{URL: url, AppID: appID, Channel: channel, UID: uid, Token: tok}
		})
		primary := c.Pub.Edge().ID
		killed := time.Now()
		edges[primary].cmd.Process.Signal(syscall.SIGKILL)
		<-edges[primary].exited
		// Frames numbered from here on were sent after the edge died: they arrive only through the backup.
		gaps = append(gaps, c.ResumedAfter(killed, c.Mark(), 20*time.Second))
		c.Close()
		// Replace the killed edge so that the next call again has a backup.
		startEdge(primary + "x")
		delete(edges, primary)
	}
	slices.Sort(gaps)
	t.Logf("SIGKILL to media flowing again: p50 %v, max %v (%v)", gaps[len(gaps)/2].Round(time.Millisecond),
		gaps[len(gaps)-1].Round(time.Millisecond), gaps)
}

// waitScheduled waits until the dispatcher offers exactly the live edges for channel: a killed edge has expired
// from the cluster and a new one has joined.
func waitScheduled(t *testing.T, url, appID, appCert, channel string, live []string) {
	t.Helper()
	tok, err := token.BuildRTC(appCert, token.RTCOptions{AppID: appID, Channel: channel, UID: "probe", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"app_id": appID, "channel": channel, "uid": "probe", "token": tok})
	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Post(url+"/v1/dispatch", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Edges []struct{ ID string } }
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		got = got[:0]
		for _, e := range r.Edges {
			got = append(got, e.ID)
		}
		slices.Sort(got)
		if slices.Equal(got, live) {
			return
		}
	}
	t.Fatalf("the dispatcher offers %v, want %v", got, live)
}
