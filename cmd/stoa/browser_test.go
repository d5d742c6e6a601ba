package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stoa-rtc/stoa/internal/browsertest"
)

// TestBrowserConsole drives the console's web UI in headless Chromium against stoa dev: sign up, create a
// project, run a short call with the SDK using its credentials, find the call's join events on the logs page
// and a chart with data on the analytics page, rotate the certificate, and find both changes on the audit page.
func TestBrowserConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network and a browser")
	}
	ctx := browsertest.Start(t)
	d := startDev(t, "--data", t.TempDir())
	shots := os.Getenv("STOA_TEST_SCREENSHOTS") // a directory for PNGs of each page, to look at the UI
	do := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			// Say where the browser is and what it shows.
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			loc, _ := chromedp.Run(dctx, chromedp.Location())
			text, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
			t.Fatalf("%s: %v\nat %s:\n%s", name, err, loc, text)
		}
		if shots != "" {
			if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
				os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
			}
		}
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	do("signup-page", chromedp.Navigate(d.url+"/console/signup"))
	do("signup",
		chromedp.SendKeys(css(`input[name=email]`), "ada@example.com"),
		chromedp.SendKeys(css(`input[name=password]`), "correct horse battery staple"),
		chromedp.Click(css(`button[type=submit]`)),
		chromedp.WaitVisible(css(`#create-project`)))

	do("project-created", chromedp.SendKeys(css(`#create-project input[name=name]`), "browser demo"),
		chromedp.Click(css(`#create-project button[type=submit]`)),
		chromedp.WaitVisible(css(`#new-app-id`)))
	appID := value(t, ctx, chromedp.Text(css(`#new-app-id`)))
	cert := value(t, ctx, chromedp.Text(css(`#new-app-cert`)))
	projectURL := value(t, ctx, chromedp.AttributeValue(css(`#create-project a[data-field-href]`), "href")).Value
	if u, err := url.Parse(projectURL); err == nil {
		projectURL = u.Path
	}
	if !isHex32(appID) || !isHex32(cert) || !strings.HasPrefix(projectURL, "/console/projects/") {
		t.Fatalf("created project: app id %q, certificate %q, link %q", appID, cert, projectURL)
	}

	// A short call through the SDK with the new project's credentials; then wait, through the API with the
	// browser's own session, until the console has ingested its events, up to the final quality reports that
	// each session's edge sends after its leave.
	runCall(t, d.url, appID, cert)
	session := browserSession(t, ctx, d.url)
	waitForLogs(t, session, d.url+"/api/v1/projects/"+strings.TrimPrefix(projectURL, "/console/projects/")+"/logs?type=quality", 2)

	do("logs", chromedp.Navigate(d.url+projectURL+"/logs"), chromedp.WaitVisible(css(`#logs`)))
	if joins := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#logs tbody tr.event-join').length`)); joins < 2 {
		t.Errorf("logs page shows %d join events, want the call's publisher and subscriber", joins)
	}

	do("analytics", chromedp.Navigate(d.url+projectURL+"/analytics?range=1h"),
		chromedp.WaitVisible(css(`svg[data-series=concurrent_users]`)))
	points := value(t, ctx, chromedp.AttributeValue(css(`svg[data-series=concurrent_users]`), "data-points")).Value
	peak := value(t, ctx, chromedp.AttributeValue(css(`svg[data-series=concurrent_users]`), "data-max")).Value
	if n, _ := strconv.Atoi(points); n == 0 {
		t.Errorf("concurrent users chart has no point")
	}
	if v, _ := strconv.ParseFloat(peak, 64); v < 2 {
		t.Errorf("concurrent users chart peaks at %s, want at least 2 (publisher and subscriber)", peak)
	}
	// The edges' quality reports carry each session's join time: the distribution counts both sessions.
	if v, _ := strconv.ParseFloat(value(t, ctx, chromedp.AttributeValue(css(`svg[data-series=dist_join_time]`), "data-max")).Value, 64); v < 1 {
		t.Errorf("join time distribution is empty")
	}

	// Rotation: add a secondary certificate, then promote it (the page asks for confirmation first).
	do("certificate-added", chromedp.Navigate(d.url+projectURL),
		chromedp.Click(css(`#add-cert button[type=submit]`)),
		chromedp.WaitVisible(css(`#add-cert output.result`)))
	secondary := value(t, ctx, chromedp.Text(css(`#add-cert output.result code`)))
	if !isHex32(secondary) || secondary == cert {
		t.Fatalf("secondary certificate %q", secondary)
	}
	do("certificate-promoted", chromedp.Navigate(d.url+projectURL),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](`window.confirm = () => true`)(ctx, tg)
			return err
		}),
		chromedp.Click(css(`#promote-cert button[type=submit]`)),
		chromedp.WaitVisible(css(`#add-cert`))) // after the reload, no rotation is in progress
	if state := value(t, ctx, chromedp.Text(css(`#cert-state`))); !strings.Contains(state, "primary only") {
		t.Errorf("after promotion the page says %q", state)
	}
	// The promoted certificate is the primary now, and the page's temporary tokens are signed with it.
	do("certificate-revealed", chromedp.Click(css(`details summary`)),
		chromedp.Click(css(`form[data-api$="/certificate"] button[type=submit]`)),
		chromedp.WaitVisible(css(`form[data-api$="/certificate"] output.result`)))
	if primary := value(t, ctx, chromedp.Text(css(`code[data-field=primary]`))); primary != secondary {
		t.Errorf("primary after promotion %q, want the secondary %q", primary, secondary)
	}
	do("token", chromedp.SendKeys(css(`form[data-api$="/token"] input[name=channel]`), "demo"),
		chromedp.SendKeys(css(`form[data-api$="/token"] input[name=uid]`), "7"),
		chromedp.Click(css(`form[data-api$="/token"] button[type=submit]`)),
		chromedp.WaitVisible(css(`form[data-api$="/token"] output.result`)))
	tok := value(t, ctx, chromedp.Evaluate[string](`document.querySelector('textarea[data-field=token]').value`))
	if code, out, errOut := stoa(t, "token", "verify", "--app-cert", secondary, "--channel", "demo", "--uid", "7", tok); code != 0 {
		t.Errorf("the page's temporary token does not verify with the promoted certificate: %d %s %s", code, out, errOut)
	}

	// Team: an invitation appears among the pending ones (its link goes to the dev log, not to the page).
	do("team", chromedp.Navigate(d.url+"/console/team"),
		chromedp.SendKeys(css(`form[data-api="/api/v1/invitations"] input[name=email]`), "grace@example.com"),
		chromedp.Click(css(`form[data-api="/api/v1/invitations"] button[type=submit]`)),
		// The page reloads with the invitation in its table.
		chromedp.WaitVisible(chromedp.Search(`//table[@id="invitations"]//td[text()="grace@example.com"]`)))

	// Finding 8 (an open redirect after login): the server gives a hostile next page up for the home page, and
	// the page's script, too, goes only to its own origin, whatever its form says: a login form made to carry
	// "/\t/evil.example" (which the browser reads as //evil.example) brings the browser to the console.
	login := css(`form[data-api="/api/v1/login"]`)
	do("logout-for-next", chromedp.Click(css(`header .who button[type=submit]`)), chromedp.WaitVisible(login),
		chromedp.Navigate(d.url+"/console/login?next=%2F%09%2Fevil.example"), chromedp.WaitVisible(login))
	if then := value(t, ctx, chromedp.AttributeValue(login, "data-then")); then.Value != "/console/projects" {
		t.Errorf("login page with a hostile next page goes to %q", then.Value)
	}
	do("login-hostile-next", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](`document.querySelector('form[data-api="/api/v1/login"]').dataset.then = '/\t/evil.example'`)(ctx, tg)
		return err
	}),
		chromedp.SendKeys(css(`input[name=email]`), "ada@example.com"),
		chromedp.SendKeys(css(`input[name=password]`), "correct horse battery staple"),
		chromedp.Click(css(`form[data-api="/api/v1/login"] button[type=submit]`)),
		chromedp.WaitVisible(css(`#create-project`)))
	if loc := value(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, d.url+"/console/") {
		t.Errorf("after a login with a hostile next page the browser is at %s", loc)
	}

	// Log out, then log in again: the login page brings the browser back to the page it was sent away from.
	do("logout", chromedp.Click(css(`header .who button[type=submit]`)),
		chromedp.WaitVisible(css(`form[data-api="/api/v1/login"]`)),
		chromedp.Navigate(d.url+"/console/audit"),
		chromedp.WaitVisible(css(`form[data-api="/api/v1/login"]`)))
	do("login", chromedp.SendKeys(css(`input[name=email]`), "ada@example.com"),
		chromedp.SendKeys(css(`input[name=password]`), "correct horse battery staple"),
		chromedp.Click(css(`form[data-api="/api/v1/login"] button[type=submit]`)))

	do("audit", chromedp.WaitVisible(css(`#audit`)))
	actions := value(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#audit td.action')].map(td => td.textContent)`))
	for _, want := range []string{"project.create", "project.certificate.add", "project.certificate.promote", "invitation.create"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit page lacks %s: %v", want, actions)
		}
	}
	if logins := value(t, ctx, chromedp.Text(css(`#access tbody`))); !strings.Contains(logins, "ada@example.com") || !strings.Contains(logins, "success") {
		t.Errorf("recent logins: %q", logins)
	}
}

// value runs a and returns its value, failing the test on an error.
func value[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// runCall runs a one-second call (one publisher, one subscriber) with the SDK through stoa loadtest, retrying
// while the new project is on its way to the edges.
func runCall(t *testing.T, base, appID, cert string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, errOut := stoa(t, "loadtest", "--url", base, "--app-id", appID, "--app-cert", cert, "--publishers", "1",
			"--subscribers", "1", "--duration", "1s", "--json")
		if code == 0 && strings.Contains(out, `"decrypt_failures": 0`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("call with the console's project: %d %s %s", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond) // the project is on its way to the edge
	}
}

// browserSession returns an HTTP client holding the browser's session cookie.
func browserSession(t *testing.T, ctx context.Context, base string) *http.Client {
	t.Helper()
	var cookie string
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	if err == nil {
		for _, c := range res.Cookies {
			if c.Name == "stoa_session" {
				cookie = c.Value
			}
		}
	}
	if cookie == "" {
		t.Fatalf("browser session cookie: %v", err)
	}
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(base)
	jar.SetCookies(u, []*http.Cookie{{Name: "stoa_session", Value: cookie}})
	return &http.Client{Jar: jar}
}

// waitForLogs polls the logs API at logsURL until it lists at least n entries: events reach the console through
// the event stream.
func waitForLogs(t *testing.T, c *http.Client, logsURL string, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := c.Get(logsURL)
		if err != nil {
			t.Fatal(err)
		}
		var page struct{ Items []json.RawMessage }
		json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && len(page.Items) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d items (status %d), want %d", logsURL, len(page.Items), resp.StatusCode, n)
		}
	}
}
