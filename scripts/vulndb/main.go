// Command vulndb builds an offline Go vulnerability database, in the layout that `govulncheck -db file:///DIR`
// reads (https://go.dev/security/vuln/database#api), from the OSV reports that the golang.org/x/vulndb module
// ships in its data/osv folder. scripts/vulncheck.sh runs it; CI then needs no network for the check.
//
//	go run ./scripts/vulndb -osv VULNDB_MODULE_DIR/data/osv -out DIR
//
// It writes, for N reports:
//
//	DIR/ID/<id>.json         each report, unchanged
//	DIR/index/db.json        {"modified": the newest report's modification time}
//	DIR/index/modules.json   [{"path": module, "vulns": [{"id", "modified"}, ...]}, ...] sorted by path and id
//
// The index entries leave out the optional "fixed" hint (the newest fixed version): with it govulncheck skips
// reading a report whose fix predates the module's version; without it govulncheck reads every report of the
// module and decides from the report's own version ranges, with the same result.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	osvDir := flag.String("osv", "", "folder of OSV reports (<id>.json), such as the vulndb module's data/osv")
	outDir := flag.String("out", "", "folder to write the database to (created; must not hold a database yet)")
	flag.Parse()
	if *osvDir == "" || *outDir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: vulndb -osv DIR -out DIR")
		os.Exit(2)
	}
	n, err := build(*osvDir, *outDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
	fmt.Printf("vulndb: %d reports written to %s\n", n, *outDir)
}

// report holds the fields of an OSV report that the index needs.
type report struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"` // the module path, or "stdlib" / "toolchain"
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

// build converts every <id>.json report in osvDir into the database in outDir and returns how many it wrote.
func build(osvDir, outDir string) (int, error) {
	names, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return 0, err
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("no OSV reports (*.json) in %s", osvDir)
	}
	if _, err := os.Stat(filepath.Join(outDir, "index")); !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%s already holds a database (or cannot be read)", outDir)
	}
	for _, dir := range []string{"ID", "index"} {
		if err := os.MkdirAll(filepath.Join(outDir, dir), 0o755); err != nil {
			return 0, err
		}
	}

	var newest time.Time
	modules := map[string]*module{}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return 0, err
		}
		var r report
		if err := json.Unmarshal(data, &r); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		// govulncheck fetches a report by the id in the index, so file name and id must agree.
		if r.ID == "" || filepath.Base(name) != r.ID+".json" {
			return 0, fmt.Errorf("%s: report id %q does not match its file name", name, r.ID)
		}
		if err := os.WriteFile(filepath.Join(outDir, "ID", r.ID+".json"), data, 0o644); err != nil {
			return 0, err
		}
		if r.Modified.After(newest) {
			newest = r.Modified
		}
		for _, a := range r.Affected {
			if a.Package.Name == "" {
				return 0, fmt.Errorf("%s: an affected entry names no module", name)
			}
			m := modules[a.Package.Name]
			if m == nil {
				m = &module{Path: a.Package.Name}
				modules[a.Package.Name] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: r.ID, Modified: r.Modified})
		}
	}

	index := make([]*module, 0, len(modules))
	for _, m := range modules {
		slices.SortStableFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
		index = append(index, m)
	}
	slices.SortFunc(index, func(a, b *module) int { return strings.Compare(a.Path, b.Path) })
	if err := writeJSON(filepath.Join(outDir, "index", "modules.json"), index); err != nil {
		return 0, err
	}
	if err := writeJSON(filepath.Join(outDir, "index", "db.json"), map[string]time.Time{"modified": newest}); err != nil {
		return 0, err
	}
	return len(names), nil
}

func writeJSON(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(name, data, 0o644)
}
