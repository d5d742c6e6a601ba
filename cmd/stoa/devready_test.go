package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDevListenTaken: with its --listen address taken, stoa dev says what to do, and does so before it starts
// anything: its data directory is as it was, dev.json of the running instance included.
func TestDevListenTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	running := filepath.Join(dir, devInfoFile)
	if err := os.WriteFile(running, []byte(`{"url":"http://`+taken.Addr().String()+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := stoa(t, "dev", "--listen", taken.Addr().String(), "--data", dir)
	if code != 1 || !strings.Contains(errOut, "--listen "+taken.Addr().String()+": the address is in use") ||
		!strings.Contains(errOut, "--listen 127.0.0.1:0 picks a free port") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != devInfoFile {
		t.Errorf("the data directory holds %v, want only the running instance's %s", entries, devInfoFile)
	}
}

// TestDevTwoAtOnce: two stoa dev with --listen 127.0.0.1:0 and their own --data run at once. Each writes its URL
// and credentials to DATA/dev.json (mode 0600, exactly the documented fields) and DATA/dev.env, and its printed
// join commands, run as printed, join a call on it; neither knows the other's project.
func TestDevTwoAtOnce(t *testing.T) {
	devs := []devNet{startDev(t), startDev(t)}
	if devs[0].url == devs[1].url {
		t.Fatalf("both at %s", devs[0].url)
	}
	for i, d := range devs {
		path := filepath.Join(d.dataDir, devInfoFile)
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v", path, err, fi.Mode())
		}
		raw, _ := os.ReadFile(path)
		var fields map[string]any
		json.Unmarshal(raw, &fields)
		cons, _ := fields["console"].(map[string]any)
		if keys := slices.Sorted(maps.Keys(fields)); !slices.Equal(keys, []string{"app_cert", "app_id", "console", "url"}) ||
			!slices.Equal(slices.Sorted(maps.Keys(cons)), []string{"email", "password", "url"}) {
			t.Errorf("%s: %s", devInfoFile, raw)
		}
		want := devInfo{URL: d.url, AppID: d.appID, AppCert: d.appCert,
			Console: devConsoleInfo{URL: d.url, Email: devOwnerEmail, Password: d.info.Console.Password}}
		if d.info != want || !regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`).MatchString(d.url) || len(d.info.Console.Password) < 12 {
			t.Errorf("%s = %+v, want %+v", devInfoFile, d.info, want)
		}
		env, err := exec.Command("bash", "-c", `. "$1" && printf '%s %s %s' "$STOA_URL" "$STOA_APP_ID" "$STOA_APP_CERT"`, "-",
			filepath.Join(d.dataDir, devEnvFile)).Output()
		if err != nil || string(env) != d.url+" "+d.appID+" "+d.appCert {
			t.Errorf("%s: %q %v", devEnvFile, env, err)
		}

		// The printed commands: two members side by side, the first in the background; run the first as printed
		// (its certificate comes from the file in DATA), for a short while.
		try := tryLines(t, d.out.String())
		certFile := filepath.Join(d.dataDir, appCertFile)
		for j, line := range try {
			if !strings.HasPrefix(line, stoaCommand()+" join --url "+d.url+" --app-id "+d.appID+" --app-cert-file "+certFile+" ") ||
				strings.HasSuffix(line, " &") != (j == 0) {
				t.Errorf("try line %q", line)
			}
		}
		args := strings.Fields(strings.TrimSuffix(try[0], " &"))
		args = args[slices.Index(args, "join"):]
		code, out, errOut := stoa(t, append(args, "--duration", "300ms", "--json")...)
		var sum joinSummary
		if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || sum.Edge == "" {
			t.Errorf("the printed command: %d %s %s", code, out, errOut)
		}
		other := devs[1-i]
		if code, reason := postDispatch(t, other.url, dispatchRequest(t, d.appID, d.appCert)); code != http.StatusForbidden || reason != "unknown_app" {
			t.Errorf("the other network took this one's project: %d %s", code, reason)
		}
	}
}

// tryLines returns the commands printed after the "try:" line of stoa dev's ready block.
func tryLines(t *testing.T, out string) []string {
	t.Helper()
	_, after, ok := strings.Cut(out, "  try:")
	lines := strings.Split(strings.TrimSpace(after), "\n")
	if !ok || len(lines) != 3 {
		t.Fatalf("no try: block in %s", out)
	}
	return lines[1:]
}

// dispatchRequest is a dispatch request for uid 1 in channel demo with a token of the project.
func dispatchRequest(t *testing.T, appID, appCert string) map[string]string {
	t.Helper()
	code, tok, errOut := stoa(t, "token", "build", "--app-id", appID, "--app-cert", appCert, "--channel", "demo", "--uid", "1")
	if code != 0 {
		t.Fatalf("token build: %s", errOut)
	}
	return map[string]string{"app_id": appID, "channel": "demo", "uid": "1", "token": strings.TrimSpace(tok)}
}

// TestDevOwnerAccount: stoa dev's console has an owner account whose password it prints once and keeps in
// dev.json; logged in with it, the console lists the demo project and shows the calls made with it. A restart
// with the same --data keeps the account, its password and the one project.
func TestDevOwnerAccount(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network twice")
	}
	dir := t.TempDir()
	d := startDev(t, "--data", dir)
	if !strings.Contains(d.out.String(), "password "+d.info.Console.Password) {
		t.Errorf("the new password was not printed:\n%s", d.out.String())
	}
	id := devProjectID(t, d)
	if code, _, errOut := stoa(t, "join", "--url", d.url, "--app-id", d.appID, "--app-cert-file", filepath.Join(dir, appCertFile),
		"--channel", "demo", "--uid", "1", "--subscribe", "--duration", "300ms"); code != 0 {
		t.Fatalf("join: %s", errOut)
	}
	client := devLogin(t, d)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var logs struct{ Items []any }
		devGet(t, client, fmt.Sprintf("%s/api/v1/projects/%d/logs?type=join", d.url, id), &logs)
		if len(logs.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the call is not in the console's logs of the demo project")
		}
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("stoa dev exited %d", code)
	}

	again := startDev(t, "--data", dir)
	if again.info.Console.Password != d.info.Console.Password || again.appID != d.appID || again.appCert != d.appCert {
		t.Errorf("after a restart: %+v, want the account and project of %+v", again.info, d.info)
	}
	if strings.Contains(again.out.String(), d.info.Console.Password) {
		t.Error("the kept password was printed again")
	}
	if got := devProjectID(t, again); got != id {
		t.Errorf("the demo project is now %d, was %d", got, id)
	}
}

// devLogin logs in to d's console with the account in its dev.json.
func devLogin(t *testing.T, d devNet) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	body, _ := json.Marshal(map[string]string{"email": d.info.Console.Email, "password": d.info.Console.Password})
	resp, err := client.Post(d.info.Console.URL+"/api/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login with the credentials of %s: %d", devInfoFile, resp.StatusCode)
	}
	return client
}

// devGet gets url with client and decodes the JSON answer into v.
func devGet(t *testing.T, client *http.Client, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
}

// devProjectID logs in to d's console and returns the id of its only project, which must be the demo project.
func devProjectID(t *testing.T, d devNet) int64 {
	t.Helper()
	var list struct {
		Items []struct {
			ID    int64  `json:"id"`
			AppID string `json:"app_id"`
		}
	}
	devGet(t, devLogin(t, d), d.info.Console.URL+"/api/v1/projects", &list)
	if len(list.Items) != 1 || list.Items[0].AppID != d.appID {
		t.Fatalf("the dev account's projects: %+v, want only %s", list.Items, d.appID)
	}
	return list.Items[0].ID
}

func TestVersionString(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		info *debug.BuildInfo
		want string
	}{
		{&debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "v1.2.3"},
			Settings: vcs("vcs.revision", "55837e7e", "vcs.time", "2026-12-04T18:01:21Z", "vcs.modified", "false")},
			"stoa v1.2.3, revision 55837e7e, committed 2026-12-04T18:01:21Z, go1.27.3"},
		{&debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "v0.0.0-20261204180121-55837e7e2e42+dirty"},
			Settings: vcs("vcs.revision", "55837e7e", "vcs.modified", "true")},
			"stoa v0.0.0-20261204180121-55837e7e2e42+dirty, revision 55837e7e, modified, go1.27.3"},
		{&debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "(devel)"}},
			"stoa (devel), no VCS revision (go run and -buildvcs=false record none; go build and go install do), go1.27.3"},
		{nil, "stoa, no build information, " + runtime.Version()},
	} {
		if got := versionString(tc.info); got != tc.want {
			t.Errorf("versionString(%+v) = %q, want %q", tc.info, got, tc.want)
		}
	}
	if code, out, _ := stoa(t, "version"); code != 0 || !strings.HasPrefix(out, "stoa ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("stoa version: %d %q", code, out)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		".stoa-dev/app-cert.txt": ".stoa-dev/app-cert.txt",
		"/home/a b/x":            "'/home/a b/x'",
		"it's":                   `'it'\''s'`,
		"":                       "''",
		"$HOME;rm":               "'$HOME;rm'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
		if out, err := exec.Command("bash", "-c", "printf %s "+shellQuote(in)).Output(); err != nil || string(out) != in {
			t.Errorf("bash read %s as %q (%v)", shellQuote(in), out, err)
		}
	}
}
