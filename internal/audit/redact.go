package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Redacted replaces the value of every well-known secret key in Before and After.
const Redacted = "[redacted]"

// sensitive reports whether a JSON object key names a secret. Keys are compared case-insensitively with
// "_", "-", "." and spaces removed, so "App_Certificate", "appCertificate" and "app-certificate" all match.
func sensitive(key string) bool {
	k := strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ':
			return -1
		}
		return r
	}, strings.ToLower(key))
	for _, s := range []string{"password", "passwd", "passphrase", "secret", "token", "privatekey", "apikey", "credential", "totp", "certificate", "signature"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return k == "cert" || strings.HasSuffix(k, "cert") || k == "key" || strings.HasSuffix(k, "keydata")
}

// marshalRedacted returns the JSON encoding of v with the values of sensitive keys, at any depth, replaced by
// [Redacted]. A nil v, or a nil json.RawMessage or []byte, encodes as null.
func marshalRedacted(v any) ([]byte, error) {
	var raw []byte
	switch v := v.(type) {
	case nil:
		return []byte("null"), nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("audit: encode change: %w", err)
		}
		raw = b
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return []byte("null"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("audit: change is not JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("audit: change has data after its JSON value")
	}
	b, err := json.Marshal(redact(x))
	if err != nil {
		return nil, fmt.Errorf("audit: encode change: %w", err)
	}
	return b, nil
}

func redact(x any) any {
	switch x := x.(type) {
	case map[string]any:
		for k, v := range x {
			if sensitive(k) {
				x[k] = Redacted
			} else {
				x[k] = redact(v)
			}
		}
	case []any:
		for i, v := range x {
			x[i] = redact(v)
		}
	}
	return x
}
