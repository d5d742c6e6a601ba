package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestAdminListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "192.0.2.1:6060", "[::]:6060", "localhost:6060", "127.0.0.1", "127.0.0.1:"} {
		if err := checkAdminListen(addr); err == nil {
			t.Errorf("checkAdminListen(%q) accepted", addr)
		}
		for _, cmd := range []string{"dev", "edge"} {
			code, _, errOut := stoa(t, cmd, "--admin-listen", addr)
			if code != 2 || !strings.Contains(errOut, "--admin-listen") {
				t.Errorf("stoa %s --admin-listen %s: exit %d, %q", cmd, addr, code, errOut)
			}
		}
	}
	for _, addr := range []string{"127.0.0.1:6060", "127.0.0.2:0", "[::1]:6060"} {
		if err := checkAdminListen(addr); err != nil {
			t.Errorf("checkAdminListen(%q): %v", addr, err)
		}
	}
}

// TestDevAdminListen: stoa dev serves the profiles on the admin address only, without the command line.
func TestDevAdminListen(t *testing.T) {
	d := startDev(t, "--admin-listen", "127.0.0.1:0")
	m := regexp.MustCompile(`profiles: +(http://127\.0\.0\.1:\d+/debug/pprof/)`).FindStringSubmatch(d.out.String())
	if m == nil {
		t.Fatalf("no profiles line in %s", d.out.String())
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(m[1] + "goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("goroutine profile: %d %.200q", code, body)
	}
	if code, body := get(m[1] + "cmdline"); code != 404 {
		t.Errorf("cmdline served: %d %q", code, body)
	}
	if code, _ := get(d.url + "/debug/pprof/"); code == 200 {
		t.Error("the public listener serves the profiles")
	}
}
