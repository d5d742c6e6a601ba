package main

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	key, created, err := loadOpenKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o", st.Mode().Perm())
	}
	again, created, err := loadOpenKey(path)
	if err != nil || created || !again.Equal(key) {
		t.Fatalf("reload: %v %v", created, err)
	}
	pub, err := parseSealKey(hex.EncodeToString(key.PublicKey().Bytes()))
	if err != nil || !pub.Equal(key.PublicKey()) {
		t.Fatalf("parseSealKey: %v", err)
	}
	// A damaged file is refused, and the error does not repeat its content.
	secret := strings.Repeat("zz", 32)
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOpenKey(path); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("damaged key file: %v", err)
	}
	for _, bad := range []string{"", "abcd", strings.Repeat("g", 64)} {
		if _, err := parseSealKey(bad); err == nil {
			t.Errorf("parseSealKey(%q) accepted", bad)
		}
	}
}
