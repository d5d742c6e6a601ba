package web

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stoa-rtc/stoa/internal/browsertest"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// profileCase is a sender's frames under the media profile, made by one side for the other to check.
type profileCase struct {
	Suite   sframe.Suite   `json:"suite"`
	Secret  string         `json:"secret"`
	KID     string         `json:"kid"` // decimal: JSON numbers lose 64-bit precision in JavaScript
	BaseKey string         `json:"base_key,omitempty"`
	Frames  []profileFrame `json:"frames"`
}

type profileFrame struct {
	Codec string `json:"codec"`
	Frame string `json:"frame"`
	Wire  string `json:"wire"`
}

var codecs = map[string]media.Codec{"data": media.Data, "opus": media.Opus, "vp8": media.VP8}

var allSuites = []sframe.Suite{
	sframe.AES_128_CTR_HMAC_SHA256_80, sframe.AES_128_CTR_HMAC_SHA256_64, sframe.AES_128_CTR_HMAC_SHA256_32,
	sframe.AES_128_GCM_SHA256_128, sframe.AES_256_GCM_SHA512_128,
}

// goCases seals, with the Go package, the frames of docs/e2ee.md's worked example and a few more (an empty data
// message, a 1,200-byte VP8 delta frame) under every suite: the worked example's secret and KID for the default
// suite, random ones for the others.
func goCases(t *testing.T) []profileCase {
	big := make([]byte, 1200)
	rand.Read(big)
	big[0] = 0x31
	frames := []struct{ codec, hex string }{
		{"opus", "7801020304050607"}, {"vp8", "1002009d012a8002e001aabbccdd"}, {"vp8", "310100112233"},
		{"data", "68656c6c6f"}, {"data", ""}, {"vp8", hex.EncodeToString(big)},
	}
	var out []profileCase
	for i, suite := range allSuites {
		secretHex, kid := randomSecretHex(), media.NewKID(uint8(i+1))
		if suite == sframe.DefaultSuite {
			secretHex, kid = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0x0123456789abcdef
		}
		secretBytes, _ := hex.DecodeString(secretHex)
		secret := sframe.NewKey(secretBytes)
		// The base key by the book (docs/e2ee.md §4), checked against the package's.
		info := binary.BigEndian.AppendUint64([]byte("stoa e2ee sender"), kid)
		base, err := hkdf.Key(sha256.New, secretBytes, nil, string(info), suite.KeySize())
		if err != nil {
			t.Fatal(err)
		}
		if k, err := media.SenderKey(suite, secret, kid); err != nil || !k.Equal(sframe.NewKey(base)) {
			t.Fatalf("%v: SenderKey differs from docs/e2ee.md: %v", suite, err)
		}
		s, err := media.NewSender(suite, secret, kid)
		if err != nil {
			t.Fatal(err)
		}
		c := profileCase{Suite: suite, Secret: secretHex, KID: strconv.FormatUint(kid, 10), BaseKey: hex.EncodeToString(base)}
		for _, f := range frames {
			frame, _ := hex.DecodeString(f.hex)
			wire, err := s.Seal(nil, codecs[f.codec], frame)
			if err != nil {
				t.Fatal(err)
			}
			c.Frames = append(c.Frames, profileFrame{f.codec, f.hex, hex.EncodeToString(wire)})
		}
		out = append(out, c)
	}
	return out
}

func randomSecretHex() string {
	b := make([]byte, media.SecretSize)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestSDKInBrowser runs the SDK's own tests (web/sdk/test) in headless Chromium against the SDK bundle, with the
// RFC 9605 vectors and Go-made profile frames of every suite; then opens, with the Go package, the frames the
// browser sealed.
func TestSDKInBrowser(t *testing.T) {
	rfc, err := os.ReadFile("testdata/rfc9605-test-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx := browsertest.Start(t)

	cases := goCases(t)
	input, _ := json.Marshal(map[string]any{"rfc": string(rfc), "profile": cases})
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(srv.URL+"/sdk/test/"),
		chromedp.Poll[chromedp.Void](`document.title === 'ready' || document.title`)); err != nil {
		t.Fatalf("loading the test page: %v", err)
	}
	if title, _ := chromedp.Run(sctx, chromedp.Title()); title != "ready" {
		t.Fatalf("the test page did not load its modules: title %q", title)
	}
	text, err := chromedp.Run(sctx, chromedp.Evaluate[string](`stoaTest.run(`+string(input)+`)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running the tests: %v", err)
	}
	var res struct {
		Results []struct{ Name, Error string }
		Out     struct{ Sealed []profileCase }
	}
	if err := json.Unmarshal([]byte(text), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Results) < 10 {
		t.Errorf("only %d tests ran in the browser", len(res.Results))
	}
	for _, r := range res.Results {
		if r.Error != "" {
			t.Errorf("browser: %s: %s", r.Name, r.Error)
		}
	}

	// Go opens what the browser sealed.
	if len(res.Out.Sealed) != len(allSuites) {
		t.Fatalf("the browser sealed %d cases, want %d", len(res.Out.Sealed), len(allSuites))
	}
	for _, c := range res.Out.Sealed {
		r, err := media.NewReceiver(c.Suite)
		if err != nil {
			t.Fatal(err)
		}
		secret, _ := hex.DecodeString(c.Secret)
		if err := r.AddSecret(3, sframe.NewKey(secret)); err != nil {
			t.Fatal(err)
		}
		kid, err := strconv.ParseUint(c.KID, 10, 64)
		if err != nil || media.Generation(kid) != 3 {
			t.Errorf("browser KID %q", c.KID)
		}
		for _, f := range c.Frames {
			wire, _ := hex.DecodeString(f.Wire)
			got, err := r.Open(nil, codecs[f.Codec], wire)
			if err != nil || hex.EncodeToString(got) != f.Frame {
				t.Errorf("%v: Go opens the browser's %s frame %.20s…: %x, %v", c.Suite, f.Codec, f.Frame, got, err)
			}
			if hdr, _, _, _ := sframe.ParseHeader(wire[prefixLen(codecs[f.Codec], wire):]); hdr != kid {
				t.Errorf("%v: the browser's frame carries KID %#x, want %#x", c.Suite, hdr, kid)
			}
		}
		if st := r.Stats(); st.Opened != uint64(len(c.Frames)) || st.Rejected != 0 {
			t.Errorf("%v: Go receiver stats %+v", c.Suite, st)
		}
	}
}

func prefixLen(c media.Codec, wire []byte) int {
	n, _ := c.ClearPrefixLen(wire)
	return n
}
