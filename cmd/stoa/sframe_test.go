package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const rfcVectors = "../../sframe/testdata/rfc9605-test-vectors.json"

func runStoa(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMain(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSFrameVectors(t *testing.T) {
	code, out, errOut := runStoa(t, "sframe", "vectors", rfcVectors)
	if code != 0 || out != "297 passed, 0 failed\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	good, err := os.ReadFile(rfcVectors)
	if err != nil {
		t.Fatal(err)
	}
	// Corrupt the first header case's encoding and one SFrame ciphertext byte.
	bad := strings.Replace(string(good), `"encoded": "00"`, `"encoded": "01"`, 1)
	i := strings.Index(bad, `"ct": "99012345674`)
	bad = bad[:i] + `"ct": "99012345675` + bad[i+len(`"ct": "99012345674`):]
	path := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(path, []byte(bad), 0o600)
	code, out, errOut = runStoa(t, "sframe", "vectors", path)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 3 || lines[2] != "295 passed, 2 failed" ||
		!strings.HasPrefix(lines[0], "FAIL header[0]: encoded header differs at byte 0") ||
		!strings.HasPrefix(lines[1], "FAIL sframe[0]: sealed ct differs at byte 5") ||
		!strings.Contains(errOut, "2 of 297 cases failed") {
		t.Errorf("corrupted file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"sframe", "vectors"}, 2, "want one FILE"},
		{[]string{"sframe", "vectors", "a", "b"}, 2, "want one FILE"},
		{[]string{"sframe", "vectors", filepath.Join(t.TempDir(), "missing.json")}, 1, "no such file"},
		{[]string{"sframe", "vectors", writeFile(t, `{"header": [{"kid": 0,`)}, 1, "malformed JSON"},
	} {
		code, out, errOut := runStoa(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, out, errOut)
		}
	}
}

func writeFile(t *testing.T, content string) string {
	path := filepath.Join(t.TempDir(), "f.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
