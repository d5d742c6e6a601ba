// Package browsertest starts headless Chromium for tests that drive web pages: Debian's chromium (installed by
// .ci/run) or another Chrome on PATH, with a fresh profile and without the background services that would try to
// reach the internet.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path finds a Chromium to drive. Without one the test is skipped, unless STOA_TEST_BROWSER is set: then it fails.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("STOA_TEST_BROWSER") != "" {
		t.Fatal("STOA_TEST_BROWSER is set but no chromium is installed (apt-get install chromium)")
	}
	t.Skip("no chromium installed; bash .ci/run installs Debian's chromium")
	return ""
}

// MediaFlags give pages a camera and a microphone without asking: Chromium's synthetic video and audio.
var MediaFlags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("use-fake-device-for-media-stream", true),
	chromedp.Flag("use-fake-ui-for-media-stream", true),
	chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
}

// Start starts a headless Chromium with a fresh profile and returns a context driving its first tab; further tabs
// are chromedp.NewContext of it. The browser stops when the test ends.
func Start(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := Path(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true))
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first run starts the browser, which lives as long as its context: that one has no deadline; each step
	// of a test gets its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}
