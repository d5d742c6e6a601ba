package sframe

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestKeyRedacted(t *testing.T) {
	raw := []byte("super secret key material 0123456789")
	k := NewKey(raw)
	hexed := hex.EncodeToString(raw)
	type holder struct {
		Exported   *Key
		unexported *Key
	}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		outputs = append(outputs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, *k))
	}
	outputs = append(outputs,
		fmt.Sprint(k), fmt.Sprintln(*k), k.String(), k.GoString(),
		fmt.Sprintf("%+v", holder{k, k}), fmt.Sprintf("%#v", &holder{k, k}))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("key", "k", k, "v", *k)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("key", "k", k)
	outputs = append(outputs, logs.String())
	js, _ := json.Marshal(holder{Exported: k})
	outputs = append(outputs, string(js))
	for _, out := range outputs {
		if strings.Contains(out, string(raw)) || strings.Contains(strings.ToLower(out), hexed) || strings.Contains(out, "[115 117") {
			t.Errorf("key material printed: %s", out)
		}
	}
	if !strings.Contains(logs.String(), `"k":"REDACTED"`) || fmt.Sprintf("%x", k) != "REDACTED" {
		t.Errorf("unexpected redaction: %s", logs.String())
	}
}

func TestKeyEqualCloneWipe(t *testing.T) {
	a, b, c := NewKey([]byte{1, 2, 3}), NewKey([]byte{1, 2, 3}), NewKey([]byte{1, 2, 4})
	if !a.Equal(b) || a.Equal(c) || a.Equal(NewKey([]byte{1, 2})) || a.Equal(nil) {
		t.Error("Equal")
	}
	src := []byte{9, 9}
	d := NewKey(src)
	src[0] = 0
	if !d.Equal(NewKey([]byte{9, 9})) {
		t.Error("NewKey did not copy")
	}
	clone := a.Clone()
	backing := a.b
	a.Wipe()
	a.Wipe()
	if a.Len() != 0 || !bytes.Equal(backing, []byte{0, 0, 0}) {
		t.Error("Wipe left key material")
	}
	if !clone.Equal(b) {
		t.Error("Wipe reached the clone")
	}
	var nilKey *Key
	nilKey.Wipe()
	if nilKey.Len() != 0 || !nilKey.Equal(a) {
		t.Error("nil key")
	}
	if _, err := NewSender(DefaultSuite, 1, a); err == nil {
		t.Error("wiped key accepted as base key")
	}
}

// TestKeyDerive checks Derive against RFC 5869 test case 3 (SHA-256, empty salt and info).
func TestKeyDerive(t *testing.T) {
	ikm := NewKey(bytes.Repeat([]byte{0x0b}, 22))
	okm, _ := hex.DecodeString("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
	got, err := ikm.Derive(nil, 42)
	if err != nil || !got.Equal(NewKey(okm)) {
		t.Errorf("Derive = %v, %v", got, err)
	}
	if _, err := (&Key{}).Derive(nil, 16); err == nil {
		t.Error("empty key derived")
	}
}

func TestSuites(t *testing.T) {
	for _, tc := range []struct {
		s          Suite
		name       string
		nk, nn, nt int
	}{
		{AES_128_CTR_HMAC_SHA256_80, "AES_128_CTR_HMAC_SHA256_80", 48, 12, 10},
		{AES_128_CTR_HMAC_SHA256_64, "AES_128_CTR_HMAC_SHA256_64", 48, 12, 8},
		{AES_128_CTR_HMAC_SHA256_32, "AES_128_CTR_HMAC_SHA256_32", 48, 12, 4},
		{AES_128_GCM_SHA256_128, "AES_128_GCM_SHA256_128", 16, 12, 16},
		{AES_256_GCM_SHA512_128, "AES_256_GCM_SHA512_128", 32, 12, 16},
		{0, "Suite(0x0000)", 0, 0, 0},
		{6, "Suite(0x0006)", 0, 0, 0},
		{0xf000, "Suite(0xf000)", 0, 0, 0},
	} {
		if tc.s.String() != tc.name || tc.s.KeySize() != tc.nk || tc.s.NonceSize() != tc.nn || tc.s.TagSize() != tc.nt ||
			tc.s.Supported() != (tc.nk > 0) {
			t.Errorf("%d: %v %d %d %d", uint16(tc.s), tc.s, tc.s.KeySize(), tc.s.NonceSize(), tc.s.TagSize())
		}
	}
	if DefaultSuite != AES_128_GCM_SHA256_128 {
		t.Error("default suite")
	}
}
