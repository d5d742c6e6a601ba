package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// The files stoa dev keeps in its data directory for people and scripts.
const (
	// devInfoFile is written once the network is ready, and removed at start: a script that waits for it reads
	// the running network's URL, even with --listen 127.0.0.1:0. It also keeps the console's dev password.
	devInfoFile = "dev.json"
	// devEnvFile holds the same, as shell variables: README.md's first call sources it.
	devEnvFile = "dev.env"
	// appCertFile holds the demo project's App Certificate, for --app-cert-file.
	appCertFile = "app-cert.txt"
	// devOwnerEmail is the console account that owns the demo project.
	devOwnerEmail = "dev@stoa.local"
)

// devInfo is DATA/dev.json.
type devInfo struct {
	URL     string         `json:"url"` // the entry point: the dispatcher, which clients' --url names
	AppID   string         `json:"app_id"`
	AppCert string         `json:"app_cert"`
	Console devConsoleInfo `json:"console"`
}

// devConsoleInfo is the console part of devInfo.
type devConsoleInfo struct {
	URL      string `json:"url"` // the console's base URL: its web UI under /console/, its API under /api/v1/
	Email    string `json:"email"`
	Password string `json:"password"`
}

// takeDevInfo reads the dev.json of an earlier run in dir, for the console password it keeps, and removes it and
// dev.env, which name a network that is not ready (yet). A missing or unreadable file gives a zero devInfo.
func takeDevInfo(dir string) (devInfo, error) {
	var info devInfo
	if b, err := os.ReadFile(filepath.Join(dir, devInfoFile)); err == nil {
		json.Unmarshal(b, &info) // a damaged file only costs a new password
	}
	for _, name := range []string{devInfoFile, devEnvFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return info, err
		}
	}
	return info, nil
}

// writeDevInfo writes dev.env, then dev.json (the sign of readiness), both readable by the owner only.
func writeDevInfo(dir string, info devInfo) error {
	env := fmt.Sprintf("# stoa dev's network, while it runs: . this file, then use $STOA_URL and $STOA_APP_ID (README.md)\n"+
		"export STOA_URL=%s\nexport STOA_APP_ID=%s\nexport %s=%s\n", shellQuote(info.URL), shellQuote(info.AppID), appCertEnv, shellQuote(info.AppCert))
	if err := writePrivate(filepath.Join(dir, devEnvFile), []byte(env)); err != nil {
		return err
	}
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return writePrivate(filepath.Join(dir, devInfoFile), append(b, '\n'))
}

// devListen listens on addr for stoa dev's entry point, saying what to do when the address is taken.
func devListen(addr, dataDir string) (net.Listener, string, error) {
	ln, scheme, err := listen(addr, dataDir, "", "", devLimits())
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, "", fmt.Errorf("--listen %s: the address is in use (another stoa dev?); stop that one or give another "+
			"address: --listen 127.0.0.1:0 picks a free port, which the printed commands and DATA/%s then name", addr, devInfoFile)
	}
	return ln, scheme, err
}

// tryCommands returns the "try:" lines of stoa dev: two members of channel demo, each publishing and
// subscribing, run side by side (the first in the background) when both commands are pasted into a shell.
func tryCommands(url, appID, certFile, secret string) string {
	stoa := stoaCommand()
	var b strings.Builder
	b.WriteString("  try:       two members of channel demo, side by side: paste both lines")
	if strings.Contains(stoa, "go run") {
		b.WriteString(" (go install ./cmd/stoa puts stoa on your PATH)")
	}
	b.WriteString("\n")
	for uid, end := range []string{" &", ""} {
		fmt.Fprintf(&b, "%s join --url %s --app-id %s --app-cert-file %s --channel demo --uid %d --publish audio,video --subscribe --e2ee-secret %s%s\n",
			stoa, url, appID, shellQuote(certFile), uid+1, secret, end)
	}
	return b.String()
}

// stoaCommand is how to run this binary again from a shell in the same directory: with go run when go run built
// it (it leaves no stoa on the PATH), with the go toolchain that built it; "stoa" when the PATH leads to it; else
// its path.
func stoaCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "stoa"
	}
	if goRunBuild(exe) {
		if v := runtime.Version(); strings.HasPrefix(v, "go") && !strings.ContainsRune(v, ' ') {
			return "GOTOOLCHAIN=" + v + " go run ./cmd/stoa"
		}
		return "go run ./cmd/stoa"
	}
	if p, err := exec.LookPath("stoa"); err == nil {
		if a, b := statOf(p), statOf(exe); a != nil && b != nil && os.SameFile(a, b) {
			return "stoa"
		}
	}
	return shellQuote(exe)
}

// goRunBuild reports whether exe was built by go run (or go test), which link into a temporary go-build
// directory.
func goRunBuild(exe string) bool {
	for _, part := range strings.Split(filepath.ToSlash(exe), "/") {
		if strings.HasPrefix(part, "go-build") {
			return true
		}
	}
	return false
}

func statOf(path string) os.FileInfo {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	return fi
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
