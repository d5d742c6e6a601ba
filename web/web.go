// Package web holds the browser side of Stoa, embedded for stoa dev to serve: the JavaScript SDK (sdk/, plain ES
// modules with JSDoc types, no build step) and the demo app (demo/).
package web

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"time"
)

//go:embed sdk/*.js demo
var files embed.FS

// sdkModules are the SDK's modules in dependency order; Bundle concatenates them into /sdk/stoa.js.
var sdkModules = []string{"sframe.js", "media.js", "e2ee.js", "client.js"}

// siblingImport is the only import form the SDK's modules use: one line importing names from a sibling module,
// which the bundle already holds.
var siblingImport = regexp.MustCompile(`^import \{[^}]*\} from '\./[a-z0-9_]+\.js';$`)

// Bundle returns the SDK as one ES module: its modules from fsys (holding sdk/) in dependency order, without their
// imports of each other. Module-level names are unique across the modules, so the bundle declares each once.
func Bundle(fsys fs.FS) ([]byte, error) {
	var out bytes.Buffer
	out.WriteString("// Stoa JavaScript SDK: one ES module made of web/sdk/*.js by package web (github.com/stoa-rtc/stoa).\n")
	for _, name := range sdkModules {
		src, err := fs.ReadFile(fsys, "sdk/"+name)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&out, "\n// --- %s\n", name)
		for i, line := range strings.SplitAfter(string(src), "\n") {
			switch {
			case siblingImport.MatchString(strings.TrimRight(line, "\n")):
				continue
			case strings.HasPrefix(line, "import ") || strings.HasPrefix(line, "import{"):
				return nil, fmt.Errorf("web: sdk/%s:%d: only one-line imports of sibling modules can be bundled", name, i+1)
			}
			out.WriteString(line)
		}
	}
	return out.Bytes(), nil
}

// NewHandler serves the SDK bundle at /sdk/stoa.js and every other file of fsys under /sdk/ and /demo/.
func NewHandler(fsys fs.FS) (http.Handler, error) {
	bundle, err := Bundle(fsys)
	if err != nil {
		return nil, err
	}
	built := time.Now()
	files := http.FileServerFS(fsys)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sdk/stoa.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "stoa.js", built, bytes.NewReader(bundle))
	})
	mux.Handle("GET /sdk/", files)
	mux.Handle("GET /demo/", files)
	return mux, nil
}

// Handler serves the embedded SDK and demo (see NewHandler).
func Handler() http.Handler {
	h, err := NewHandler(files)
	if err != nil {
		panic(err) // the embedded modules are checked by this package's tests
	}
	return h
}
