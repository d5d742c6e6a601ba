package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version of this binary",
		usage: `stoa version

Prints the module version and the VCS revision this binary was built from, as the go command recorded them
(go build and go install record the revision; go run and -buildvcs=false record none), and the Go version.`,
		run: func(_ context.Context, args []string, env *cmdEnv) error {
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			info, _ := debug.ReadBuildInfo()
			fmt.Fprintln(env.stdout, versionString(info))
			return nil
		},
	}
}

// versionString describes the build in info (nil: none recorded) on one line: "stoa VERSION, revision REV[,
// modified], committed TIME, GO".
func versionString(info *debug.BuildInfo) string {
	if info == nil {
		return "stoa, no build information, " + runtime.Version()
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	setting := map[string]string{}
	for _, s := range info.Settings {
		setting[s.Key] = s.Value
	}
	parts := []string{"stoa " + version}
	if rev := setting["vcs.revision"]; rev != "" {
		parts = append(parts, "revision "+rev)
		if setting["vcs.modified"] == "true" {
			parts = append(parts, "modified")
		}
		if t := setting["vcs.time"]; t != "" {
			parts = append(parts, "committed "+t)
		}
	} else {
		parts = append(parts, "no VCS revision (go run and -buildvcs=false record none; go build and go install do)")
	}
	return strings.Join(append(parts, info.GoVersion), ", ")
}
