package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestBundle(t *testing.T) {
	b, err := Bundle(files)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "import ") {
			t.Errorf("the bundle keeps an import: %s", line)
		}
	}
	for _, m := range sdkModules {
		if !strings.Contains(string(b), "// --- "+m+"\n") {
			t.Errorf("the bundle lacks %s", m)
		}
	}
	fsys := fstest.MapFS{}
	for _, m := range sdkModules {
		fsys["sdk/"+m] = &fstest.MapFile{Data: []byte("export const x = 1;\n")}
	}
	fsys["sdk/"+sdkModules[1]].Data = []byte("import {\n  x,\n} from './sframe.js';\n")
	if _, err := Bundle(fsys); err == nil || !strings.Contains(err.Error(), sdkModules[1]+":1") {
		t.Errorf("a multi-line import was bundled: %v", err)
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, want := range map[string]string{"/sdk/stoa.js": "text/javascript; charset=utf-8", "/demo/": "text/html; charset=utf-8"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != want || len(body) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	if resp, err := http.Get(srv.URL + "/sdk/test/index.html"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("the SDK's tests are served by stoa dev: %v", resp.Status)
	}
}
