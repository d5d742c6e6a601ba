package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stoa-rtc/stoa/internal/loadtest"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/token"
)

// syncBuffer is an io.Writer that tests can read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// devNet is a running `stoa dev` in this process.
type devNet struct {
	url, appID, appCert, nats string
	projectKey, region        string      // the console's project key (hex); the first edge's region
	dataDir                   string      // its --data
	openKeyFile               string      // the file of the nodes' sealing key (--project-open-key)
	log                       *syncBuffer // its standard error: the log
	out                       *syncBuffer // its standard output
	info                      devInfo     // its DATA/dev.json
	stop                      func() int  // stops it (once) and returns its exit code
}

// creds returns the path of one of the credentials stoa dev writes: "edge", "dispatch" or "console".
func (d devNet) creds(role string) string { return filepath.Join(d.dataDir, "nats", role+".creds") }

func startDev(t *testing.T, extra ...string) devNet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	errOut := &syncBuffer{}
	done := make(chan int, 1)
	dataDir := t.TempDir()
	args := append([]string{"dev", "--listen", "127.0.0.1:0", "--data", dataDir, "--log-level", "warn"}, extra...)
	for i, a := range extra {
		if a == "--data" && i+1 < len(extra) {
			dataDir = extra[i+1]
		}
	}
	go func() { done <- runMain(ctx, args, &out, errOut) }()
	exited := -1
	stop := func() int {
		cancel()
		if exited == -1 {
			exited = <-done
		}
		return exited
	}
	t.Cleanup(func() {
		if code := stop(); code != 0 {
			t.Errorf("stoa dev exited %d: %s", code, errOut.String())
		}
	})
	// Generous: a loaded CI machine starts a network with the race detector slowly; a failed start ends sooner.
	deadline := time.Now().Add(30 * time.Second)
	// The "try:" line ends the ready block (each line is one write): wait for it, not for the first lines.
	for !strings.Contains(out.String(), "  try:") {
		select {
		case exited = <-done:
			t.Fatalf("stoa dev exited %d before it was ready: %s", exited, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stoa dev did not become ready: %s %s", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond) // poll pace
	}
	match := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no %s in %s", re, out.String())
		}
		return m[1]
	}
	field := func(name string) string { return match(name + `:\s+(\S+)`) }
	if !strings.HasPrefix(out.String(), "stoa dev ready\n") {
		t.Errorf("first line: %q", out.String())
	}
	var info devInfo
	if b, err := os.ReadFile(filepath.Join(dataDir, devInfoFile)); err != nil || json.Unmarshal(b, &info) != nil {
		t.Fatalf("stoa dev is ready but its %s is not: %v %q", devInfoFile, err, b)
	}
	return devNet{url: field("url"), appID: field("app id"), appCert: field("app cert"), nats: field("nats"),
		projectKey: match(`projects: +signed with key (\S+)`), region: match(`edge: +\S+ \(region (\w+)\)`),
		dataDir: dataDir, openKeyFile: match(`--project-open-key (\S+)\)`), log: errOut, out: &out, info: info, stop: stop}
}

func TestDevServesDispatch(t *testing.T) {
	d := startDev(t)
	tok, err := token.BuildRTC(d.appCert, token.RTCOptions{AppID: d.appID, Channel: "demo", UID: "1", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"app_id": d.appID, "channel": "demo", "uid": "1", "token": tok})
	resp, err := http.Post(d.url+"/v1/dispatch", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Edges []struct{ ID, Region, URL string }
	}
	json.NewDecoder(resp.Body).Decode(&got)
	if resp.StatusCode != 200 || len(got.Edges) != 1 || !strings.HasPrefix(got.Edges[0].URL, "ws://127.0.0.1:") {
		t.Fatalf("dispatch: %d %+v", resp.StatusCode, got)
	}
	h, err := http.Get(d.url + "/healthz")
	if err != nil || h.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", h, err)
	}
	h.Body.Close()
}

func TestDevKeepsItsProject(t *testing.T) {
	dir := t.TempDir()
	first, second := startDev(t, "--data", dir), startDev(t, "--data", dir)
	if first.appID != second.appID || first.appCert != second.appCert || !isHex32(first.appID) {
		t.Errorf("the project changed between runs: %+v %+v", first, second)
	}
	// Flags given explicitly win over the kept project.
	given := startDev(t, "--app-id", strings.Repeat("1", 32), "--app-cert", strings.Repeat("2", 32))
	if given.appID != strings.Repeat("1", 32) {
		t.Errorf("app id %s", given.appID)
	}
}

// The main job end to end, in process: stoa dev, a load test with audio, video and data, and an eavesdropper
// that joins the same channel with the wrong channel secret and decrypts nothing.
func TestDevLoadtestAndWrongSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network")
	}
	d := startDev(t)
	secret := strings.Repeat("ab", 32)
	var ltOut, ltErr syncBuffer
	ltDone := make(chan int, 1)
	go func() {
		ltDone <- runMain(context.Background(), []string{"loadtest", "--url", d.url, "--app-id", d.appID, "--app-cert", d.appCert,
			"--channel", "lt", "--publishers", "1", "--subscribers", "3", "--audio", "--video", "--data",
			"--duration", "3s", "--e2ee-secret", secret, "--json"}, &ltOut, &ltErr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(ltErr.String(), "measuring") {
		if time.Now().After(deadline) {
			t.Fatalf("the load test did not start measuring: %s", ltErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, errOut := stoa(t, "join", "--url", d.url, "--app-id", d.appID, "--app-cert", d.appCert, "--channel", "lt",
		"--uid", "eve", "--subscribe", "--duration", "1500ms", "--e2ee-secret", strings.Repeat("cd", 32), "--json")
	if code != 0 {
		t.Fatalf("join: %d %s", code, errOut)
	}
	var eve joinSummary
	if err := json.Unmarshal([]byte(out), &eve); err != nil {
		t.Fatalf("join printed %q: %v", out, err)
	}
	if eve.FramesReceived == 0 || eve.DecryptOK != 0 || eve.DecryptFailed == 0 {
		t.Errorf("with the wrong secret: %+v", eve)
	}

	if code := <-ltDone; code != 0 {
		t.Fatalf("loadtest: %d %s", code, ltErr.String())
	}
	var res struct {
		FramesSent      uint64  `json:"frames_sent"`
		FramesExpected  uint64  `json:"frames_expected"`
		DecryptFailures uint64  `json:"decrypt_failures"`
		Corrupt         uint64  `json:"corrupt"`
		Delivery        float64 `json:"delivery"`
	}
	dec := json.NewDecoder(strings.NewReader(ltOut.String()))
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("loadtest printed %q: %v", ltOut.String(), err)
	}
	// Loopback loses nothing, but a loaded CI machine may delay the last frames past the drain period.
	if res.FramesSent == 0 || res.FramesExpected != 3*res.FramesSent || res.Delivery < 0.99 || res.DecryptFailures != 0 || res.Corrupt != 0 {
		t.Errorf("loadtest: %+v", res)
	}
}

// stoa dev with two regions, seen and steered with stoa cluster.
func TestClusterCommands(t *testing.T) {
	d := startDev(t, "--regions", "eu:2,us:1")
	var status struct {
		Regions []struct {
			Region string
			Edges  []struct {
				ID       string
				Draining bool
			}
		}
	}
	statusOf := func() {
		t.Helper()
		code, out, errOut := stoa(t, "cluster", "status", "--nats", d.nats, "--nats-creds", d.creds("console"), "--json")
		if code != 0 {
			t.Fatalf("status: %d %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &status); err != nil {
			t.Fatalf("status printed %q: %v", out, err)
		}
	}
	statusOf()
	got := map[string]int{}
	for _, r := range status.Regions {
		got[r.Region] = len(r.Edges)
	}
	if got["eu"] != 2 || got["us"] != 1 {
		t.Fatalf("status: %+v", status)
	}
	if code, out, errOut := stoa(t, "cluster", "drain", "eu-1", "--nats", d.nats, "--nats-creds", d.creds("console"), "--regions", "eu"); code != 0 || !strings.Contains(out, "draining") {
		t.Fatalf("drain: %d %s %s", code, out, errOut)
	}
	statusOf()
	for _, r := range status.Regions {
		for _, e := range r.Edges {
			if e.ID == "eu-1" && !e.Draining {
				t.Errorf("eu-1 not shown draining: %+v", status)
			}
		}
	}
	if code, out, _ := stoa(t, "cluster", "unblock", "127.0.0.2", "--nats", d.nats, "--nats-creds", d.creds("console"), "--regions", "eu"); code != 0 || !strings.Contains(out, "unblocked") {
		t.Errorf("unblock: %d %s", code, out)
	}
	if code, _, errOut := stoa(t, "cluster", "unblock", "not-an-ip", "--nats", d.nats, "--nats-creds", d.creds("console")); code != 2 || !strings.Contains(errOut, "not an IP") {
		t.Errorf("unblock garbage: %d %s", code, errOut)
	}
}

// stoa join publishes the VP8 frames of an IVF file; a subscriber with the same channel secret receives each of
// them, decrypted, byte for byte as in the file.
func TestJoinPublishesIVF(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network")
	}
	d := startDev(t)
	// An IVF file (32-byte header, then 12-byte frame headers) of synthetic VP8 frames at 30 fps.
	var ivf bytes.Buffer
	hdr := make([]byte, 32)
	copy(hdr, "DKIF")
	binary.LittleEndian.PutUint16(hdr[6:], 32)
	copy(hdr[8:], "VP80")
	binary.LittleEndian.PutUint16(hdr[12:], 640)
	binary.LittleEndian.PutUint16(hdr[14:], 360)
	binary.LittleEndian.PutUint32(hdr[16:], 30) // timebase denominator
	binary.LittleEndian.PutUint32(hdr[20:], 1)  // numerator
	binary.LittleEndian.PutUint32(hdr[24:], 30)
	ivf.Write(hdr)
	var frames [][]byte // as in the file
	for i := range 30 {
		frame := loadtest.VideoFrame(loadtest.Marker{Seq: uint32(i)}, i == 0)
		frames = append(frames, frame)
		fh := make([]byte, 12)
		binary.LittleEndian.PutUint32(fh, uint32(len(frame)))
		binary.LittleEndian.PutUint64(fh[4:], uint64(i))
		ivf.Write(fh)
		ivf.Write(frame)
	}
	path := filepath.Join(t.TempDir(), "clip.ivf")
	if err := os.WriteFile(path, ivf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := strings.Repeat("5a", 32)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pubDone := make(chan int, 1)
	go func() {
		var out, errOut syncBuffer
		pubDone <- runMain(ctx, []string{"join", "--url", d.url, "--app-id", d.appID, "--app-cert", d.appCert, "--channel", "ivf",
			"--e2ee-secret", secret, "--uid", "pub", "--publish", "video", "--input", path, "--duration", "60s"}, &out, &errOut)
	}()

	tok, err := token.BuildRTC(d.appCert, token.RTCOptions{AppID: d.appID, Channel: "ivf", UID: "sub", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hex.DecodeString(secret)
	jctx, jcancel := context.WithTimeout(ctx, 20*time.Second)
	defer jcancel()
	sub, err := sdk.Join(jctx, sdk.Config{URL: d.url, AppID: d.appID, Channel: "ivf", UID: "sub", Token: tok, Secret: sframe.NewKey(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var tr *sdk.RemoteTrack
	select {
	case tr = <-sub.Tracks():
	case <-jctx.Done():
		t.Fatal("no track from the publisher")
	}
	// The file loops: wait until every one of its frames has arrived once, and compare each arrival.
	seen := map[uint32]bool{}
	for len(seen) < len(frames) {
		f, err := tr.ReadFrame(jctx)
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", len(seen), len(frames), err)
		}
		m, err := loadtest.ParseFrame(f.Data, loadtest.VideoHeaderLen(f.Data))
		if m.Seq >= uint32(len(frames)) && err == nil {
			err = fmt.Errorf("frame number %d", m.Seq)
		}
		if err != nil || !bytes.Equal(f.Data, frames[m.Seq]) {
			t.Fatalf("a frame not in the file (%v): % x", err, f.Data[:min(len(f.Data), 32)])
		}
		seen[m.Seq] = true
	}
	cancel()
	if code := <-pubDone; code != 0 {
		t.Errorf("publisher exited %d", code)
	}
}

// The console on stoa dev: sign up, create a project through the API, and a call with that project's credentials
// works within seconds (the project reached the dispatcher and the edge through the cluster); the audit log in
// the data directory verifies.
func TestDevConsoleProjectToCall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network")
	}
	dir := t.TempDir()
	d := startDev(t, "--data", dir)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	call := func(method, path, csrf string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, d.url+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", d.url)
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, m)
		}
		return m
	}
	call("POST", "/api/v1/signup", "", map[string]string{"email": "ada@example.com", "password": "correct horse battery"})
	login := call("POST", "/api/v1/login", "", map[string]string{"email": "ada@example.com", "password": "correct horse battery"})
	csrf, _ := login["csrf_token"].(string)
	if csrf == "" {
		csrf, _ = call("GET", "/api/v1/session", "", nil)["csrf_token"].(string)
	}
	proj := call("POST", "/api/v1/projects", csrf, map[string]string{"name": "demo"})
	appID, _ := proj["app_id"].(string)
	cert, _ := proj["app_certificate"].(string)
	if !isHex32(appID) || !isHex32(cert) {
		t.Fatalf("project: %v", proj)
	}
	// A call with the new project: the loadtest joins publishers and subscribers and checks every frame.
	runCall(t, d.url, appID, cert)
	// The edges' join events reach the console's media server logs through the cluster's event stream.
	id := int64(proj["id"].(float64))
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		logs := call("GET", fmt.Sprintf("/api/v1/projects/%d/logs?type=join", id), "", nil)
		if items, _ := logs["items"].([]any); len(items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no join event in the console's logs: %v", logs)
		}
	}
	code, out, errOut := stoa(t, "audit", "verify", "--db", filepath.Join(dir, "console.db"))
	if code != 0 || !strings.HasPrefix(out, "ok, ") {
		t.Errorf("audit verify: %d %q %q", code, out, errOut)
	}
	spec := call("GET", "/api/v1/openapi.json", "", nil)
	if spec["openapi"] == nil {
		t.Errorf("openapi.json: %v", spec)
	}
}

// TestDevPasswordReset follows a password reset on stoa dev, which has no mail server: the reset link is in its log.
func TestDevPasswordReset(t *testing.T) {
	d := startDev(t, "--log-level", "info")
	post := func(path string, body any) int {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := http.Post(d.url+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const oldPassword, newPassword = "correct horse battery", "another long passphrase"
	if code := post("/api/v1/signup", map[string]string{"email": "ada@example.com", "password": oldPassword}); code != 201 {
		t.Fatalf("signup: %d", code)
	}
	if code := post("/api/v1/password-reset", map[string]string{"email": "ada@example.com"}); code != 202 {
		t.Fatalf("password-reset: %d", code)
	}
	link := regexp.MustCompile(regexp.QuoteMeta(d.url) + `/console/reset-password\?token=([A-Za-z0-9_-]+)`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		if m = link.FindStringSubmatch(d.log.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no reset link in the log:\n%s", d.log.String())
		}
	}
	if resp, err := http.Get(m[0]); err != nil || resp.StatusCode != 200 {
		t.Errorf("the reset link's page: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if code := post("/api/v1/password-reset/confirm", map[string]string{"token": m[1], "password": newPassword}); code >= 300 {
		t.Fatalf("confirm: %d", code)
	}
	if code := post("/api/v1/login", map[string]string{"email": "ada@example.com", "password": oldPassword}); code != 401 {
		t.Errorf("login with the old password: %d", code)
	}
	if code := post("/api/v1/login", map[string]string{"email": "ada@example.com", "password": newPassword}); code != 200 {
		t.Errorf("login with the new password: %d", code)
	}
	if strings.Contains(d.log.String(), newPassword) || strings.Contains(d.log.String(), oldPassword) {
		t.Error("a password is in the log")
	}
}

// TestDevRefusesOtherHosts: stoa dev listens on loopback, where a web page using DNS rebinding could reach its
// console under the page's own host name; the console answers only to loopback names.
func TestDevRefusesOtherHosts(t *testing.T) {
	d := startDev(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(d.url, "http://"))
	for host, want := range map[string]int{"localhost:" + port: 200, "rebind.example:" + port: 421} {
		req, _ := http.NewRequest("GET", d.url+"/console/login", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// TestDispatchTrustsOnlyProjectKeys: a dispatcher on stoa dev's bus given another console's project key refuses
// the dev project's tokens (its record is not signed by that key); given the dev console's key, it schedules them.
func TestDispatchTrustsOnlyProjectKeys(t *testing.T) {
	d := startDev(t)
	dispatcher := func(key string) string {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- runMain(ctx, []string{"dispatch", "--nats", d.nats, "--nats-creds", d.creds("dispatch"), "--region", d.region,
				"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "error", "--project-keys", key,
				"--project-open-key", d.openKeyFile}, &out, &errOut)
		}()
		t.Cleanup(func() { cancel(); <-done })
		rx := regexp.MustCompile(`ready.*url=(\S+)`)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if m := rx.FindStringSubmatch(out.String()); m != nil {
				return m[1]
			}
			if time.Now().After(deadline) {
				t.Fatalf("dispatcher not ready: %s %s", out.String(), errOut.String())
			}
		}
	}
	tok, err := token.BuildRTC(d.appCert, token.RTCOptions{AppID: d.appID, Channel: "demo", UID: "1", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(url string) (int, string) {
		return postDispatch(t, url, map[string]string{"app_id": d.appID, "channel": "demo", "uid": "1", "token": tok})
	}
	// The trusting dispatcher first: it proves the dev edges are there, so that the other's refusal cannot be for
	// want of edges (no_edges) but must be for the project.
	if code, _ := ask(dispatcher(d.projectKey)); code != http.StatusOK {
		t.Errorf("a dispatcher trusting the dev console's key: %d", code)
	}
	other := strings.Repeat("ab", 32)
	if code, reason := ask(dispatcher(other)); code != http.StatusForbidden || reason != "unknown_app" {
		t.Errorf("a dispatcher trusting another key: %d %s, want 403 unknown_app", code, reason)
	}
}

// TestDevBusAuthentication (finding 9): stoa dev's NATS refuses a connection without credentials; a further
// `stoa edge` with DATA/nats/edge.creds joins, is listed by the dispatcher and serves a client; edge.creds cannot
// write the projects bucket, the heartbeat of stoa dev's own edge, a dispatcher key or a block.
func TestDevBusAuthentication(t *testing.T) {
	d := startDev(t)
	if nc, err := nats.Connect(d.nats); err == nil {
		nc.Close()
		t.Fatal("stoa dev's NATS accepted a connection without credentials")
	}
	nc, err := nats.Connect(d.nats, nats.UserCredentials(d.creds("edge")), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range []string{"$KV.stoa_projects." + base64.RawURLEncoding.EncodeToString([]byte(d.appID)),
		"$KV.stoa_edges_local." + base64.RawURLEncoding.EncodeToString([]byte("edge-1")),
		"$KV.stoa_dispatchers." + base64.RawURLEncoding.EncodeToString([]byte("x")),
		"$KV.stoa_blocks_local." + base64.RawURLEncoding.EncodeToString([]byte("192.0.2.1"))} {
		nc.Publish(subj, []byte(`{}`))
		nc.Flush()
		if err := nc.LastError(); err == nil || !strings.Contains(err.Error(), subj) {
			t.Errorf("edge.creds published to %s (last error %v)", subj, err)
		}
	}

	// Drain the dev edge, so that the client can only be scheduled onto the extra one.
	if code, _, errOut := stoa(t, "cluster", "drain", "edge-1", "--nats", d.nats, "--nats-creds", d.creds("console")); code != 0 {
		t.Fatalf("drain: %d %s", code, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"edge", "--nats", d.nats, "--nats-creds", d.creds("edge"), "--id", "extra",
			"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "error", "--project-keys", d.projectKey}, &out, &errOut)
	}()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ready"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("extra edge not ready: %s", errOut.String())
		}
	}
	// The dispatcher lists it (once its heartbeat has arrived), and a client joins a call through it.
	var summary joinSummary
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, jout, jerr := stoa(t, "join", "--url", d.url, "--app-id", d.appID, "--app-cert", d.appCert, "--channel", "x",
			"--uid", "1", "--subscribe", "--duration", "300ms", "--json")
		if code == 0 {
			if err := json.Unmarshal([]byte(jout), &summary); err != nil {
				t.Fatalf("join printed %q: %v", jout, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("join through the extra edge: %d %s", code, jerr)
		}
	}
	if summary.Edge != "extra" {
		t.Errorf("joined through %+v, want the extra edge", summary)
	}
}

// TestDevRefusesNATSOffLoopback (finding 9): stoa dev's bus has no TLS, so --nats-listen off loopback is refused
// with the reason.
func TestDevRefusesNATSOffLoopback(t *testing.T) {
	code, _, errOut := stoa(t, "dev", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--nats-listen", "0.0.0.0:0")
	if code == 0 || !strings.Contains(errOut, "without TLS") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// postDispatch posts a dispatch request to the dispatcher at url and returns the status and the error code, if any.
func postDispatch(t *testing.T, url string, req map[string]string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post(url+"/v1/dispatch", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error.Code
}
