package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeReports(t *testing.T, reports map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range reports {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestBuildIndexesEveryAffectedModule(t *testing.T) {
	stdlib := `{"id":"GO-2026-0002","modified":"2026-03-01T00:00:00Z","affected":[{"package":{"name":"stdlib"}}]}`
	two := `{"id":"GO-2026-0001","modified":"2026-05-01T00:00:00Z",` +
		`"affected":[{"package":{"name":"stdlib"}},{"package":{"name":"example.com/m"}}]}`
	in := writeReports(t, map[string]string{
		"GO-2026-0002.json": stdlib,
		"GO-2026-0001.json": two,
		"README.md":         "not a report",
	})
	out := filepath.Join(t.TempDir(), "db")

	n, err := build(in, out)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("build wrote %d reports, want 2", n)
	}
	wantModules := `[{"path":"example.com/m","vulns":[{"id":"GO-2026-0001","modified":"2026-05-01T00:00:00Z"}]},` +
		`{"path":"stdlib","vulns":[{"id":"GO-2026-0001","modified":"2026-05-01T00:00:00Z"},` +
		`{"id":"GO-2026-0002","modified":"2026-03-01T00:00:00Z"}]}]`
	if got := readFile(t, filepath.Join(out, "index", "modules.json")); got != wantModules {
		t.Errorf("modules.json = %s\nwant %s", got, wantModules)
	}
	if got, want := readFile(t, filepath.Join(out, "index", "db.json")), `{"modified":"2026-05-01T00:00:00Z"}`; got != want {
		t.Errorf("db.json = %s, want %s", got, want)
	}
	if got := readFile(t, filepath.Join(out, "ID", "GO-2026-0002.json")); got != stdlib {
		t.Errorf("ID/GO-2026-0002.json = %s, want the report unchanged", got)
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reports map[string]string
		want    string
	}{
		{"no reports", map[string]string{"README.md": "x"}, "no OSV reports"},
		{"not JSON", map[string]string{"GO-1.json": "{"}, "GO-1.json: unexpected end of JSON input"},
		{"id differs from file name", map[string]string{"GO-1.json": `{"id":"GO-2"}`}, `report id "GO-2" does not match`},
		{"no id", map[string]string{"GO-1.json": `{}`}, `report id "" does not match`},
		{"module without a name", map[string]string{"GO-1.json": `{"id":"GO-1","affected":[{"package":{}}]}`}, "names no module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(writeReports(t, tc.reports), filepath.Join(t.TempDir(), "db"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("build: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestBuildRefusesToOverwriteADatabase(t *testing.T) {
	in := writeReports(t, map[string]string{"GO-1.json": `{"id":"GO-1"}`})
	out := t.TempDir()
	if _, err := build(in, out); err != nil {
		t.Fatal(err)
	}
	if _, err := build(in, out); err == nil || !strings.Contains(err.Error(), "already holds a database") {
		t.Errorf("second build into the same folder: %v, want a refusal", err)
	}
}
