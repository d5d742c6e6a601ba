package token

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheSize is the number of verified tokens a Verifier remembers unless told otherwise.
const DefaultCacheSize = 65536

// Verifier verifies RTC join tokens offline against the certificates it holds for each App ID. It is safe for
// concurrent use. Each App ID may have several certificates (a primary and a secondary during rotation); a token
// signed with any of them verifies.
//
// Tokens that verified are cached by their exact string, so a repeated token costs about a map look-up; expiry,
// channel and uid are still checked on every call. Changing any app's certificates empties the cache, so a retired
// certificate stops working at once. Failed verifications are never cached: hostile input cannot fill the cache.
type Verifier struct {
	now       func() time.Time
	cacheSize int

	mu    sync.RWMutex
	apps  map[string]App // App ID → its certificates and settings
	gen   uint64         // incremented on every certificate change
	cache map[string]*cached

	hits, misses atomic.Uint64
}

type cached struct {
	tok   *Token
	grant Grant // of the first RTC service; most tokens have exactly one
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithClock makes the verifier read the time from now instead of time.Now (for tests).
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// WithCacheSize sets how many verified tokens are remembered; 0 disables the cache.
func WithCacheSize(n int) VerifierOption { return func(v *Verifier) { v.cacheSize = max(n, 0) } }

// App is what a Verifier holds for one App ID.
type App struct {
	// Certificates sign the app's tokens, primary first.
	Certificates []string
	// Accept006 admits legacy "006" tokens, refused by default: their signature does not bind the channel and uid
	// apart (see [Token006.Verify] for what is still refused), so they are weaker than AccessToken2.
	Accept006 bool
}

// NewVerifier returns a Verifier with no apps.
func NewVerifier(opts ...VerifierOption) *Verifier {
	v := &Verifier{now: time.Now, cacheSize: DefaultCacheSize, apps: map[string]App{}}
	for _, o := range opts {
		o(v)
	}
	v.cache = make(map[string]*cached, min(v.cacheSize, 1024))
	return v
}

// SetCertificates replaces the certificates of appID (primary first), with the default settings (no 006 tokens).
// With none, the app is removed.
func (v *Verifier) SetCertificates(appID string, certificates ...string) {
	v.SetApp(appID, App{Certificates: certificates})
}

// SetApp replaces what v holds for appID. An App without certificates removes the app.
func (v *Verifier) SetApp(appID string, app App) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(app.Certificates) == 0 {
		delete(v.apps, appID)
	} else {
		app.Certificates = slices.Clone(app.Certificates)
		v.apps[appID] = app
	}
	v.gen++
	clear(v.cache)
}

// Apps returns the number of App IDs the verifier holds certificates for.
func (v *Verifier) Apps() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.apps)
}

// Verify checks that token admits want.UID to want.Channel of want.AppID now: a certificate of the app signed it,
// neither the token nor its join privilege has expired, and an RTC service names the channel and the uid (or the
// wildcard uid). The Grant tells which other privileges the participant holds and until when.
func (v *Verifier) Verify(token string, want Expect) (Grant, error) {
	now := v.now()
	v.mu.RLock()
	c := v.cache[token]
	v.mu.RUnlock()
	if c != nil {
		v.hits.Add(1)
		return c.check(want, now)
	}
	v.misses.Add(1)

	if strings.HasPrefix(token, version006) {
		return v.verify006(token, want, now)
	}
	tok, err := Parse(token)
	if err != nil {
		return Grant{}, err
	}
	if want.AppID != "" && tok.AppID != want.AppID {
		return Grant{}, ErrAppIDMismatch
	}
	app, gen := v.app(tok.AppID)
	if app.Certificates == nil {
		return Grant{}, ErrUnknownApp
	}
	if !slices.ContainsFunc(app.Certificates, tok.checkSignature) {
		return Grant{}, ErrSignature
	}
	c = &cached{tok: tok}
	if s, err := tok.rtcService(Expect{}); err == nil {
		c.grant = newGrant(tok, s)
	}
	v.remember(token, c, gen)
	return c.check(want, now)
}

func (v *Verifier) app(appID string) (App, uint64) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.apps[appID], v.gen
}

// verify006 verifies a legacy token, if its app accepts them; these are not cached, since what they grant depends
// on the channel and uid asked for.
func (v *Verifier) verify006(token string, want Expect, now time.Time) (Grant, error) {
	tok, err := Parse006(token)
	if err != nil {
		return Grant{}, err
	}
	if want.AppID != "" && tok.AppID != want.AppID {
		return Grant{}, ErrAppIDMismatch
	}
	app, _ := v.app(tok.AppID)
	if app.Certificates == nil {
		return Grant{}, ErrUnknownApp
	}
	if !app.Accept006 {
		return Grant{}, Err006Refused
	}
	for _, cert := range app.Certificates {
		g, err := tok.Verify(cert, want, now)
		if err != ErrSignature {
			return g, err
		}
	}
	return Grant{}, ErrSignature
}

// remember caches a verified token unless certificates changed since gen, when they were read.
func (v *Verifier) remember(token string, c *cached, gen uint64) {
	if v.cacheSize == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen != gen {
		return // rotated while we verified: the next call verifies afresh
	}
	if len(v.cache) >= v.cacheSize {
		// Evict an arbitrary tenth; map iteration order is randomised, so no input can pin entries.
		n := max(v.cacheSize/10, 1)
		for k := range v.cache {
			delete(v.cache, k)
			if n--; n == 0 {
				break
			}
		}
	}
	v.cache[token] = c
}

// check applies the per-request part of verification to a token whose signature is known to be good.
func (c *cached) check(want Expect, now time.Time) (Grant, error) {
	if want.AppID != "" && c.tok.AppID != want.AppID {
		return Grant{}, ErrAppIDMismatch
	}
	g := c.grant
	// The common case, one RTC service, is answered from the precomputed grant without allocating.
	if g.Channel != want.Channel && want.Channel != "" || !uidMatches(g.UID, want.UID) && want.UID != "" {
		s, err := c.tok.rtcService(want)
		if err != nil {
			if !now.Before(c.tok.ExpiresAt()) {
				return Grant{}, ErrExpired
			}
			return Grant{}, err
		}
		g = newGrant(c.tok, s)
	} else if g.ExpiresAt.IsZero() {
		if !now.Before(c.tok.ExpiresAt()) {
			return Grant{}, ErrExpired
		}
		return Grant{}, ErrNoService
	}
	if err := g.check(now); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// Stats returns how many calls were answered from the cache and how many were verified in full.
func (v *Verifier) Stats() (hits, misses uint64) { return v.hits.Load(), v.misses.Load() }
