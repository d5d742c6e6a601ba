package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stoa-rtc/stoa/internal/busauth"
	"github.com/stoa-rtc/stoa/internal/cluster"
)

// authorityFile is the name of the bus authority's secret seeds in its directory (stoa dev: DATA/nats).
const authorityFile = "authority.json"

func busCommand() *command {
	var (
		dir, prefix, role, regions, id, reserve, out string
		anyID                                        bool
	)
	dirFlag := func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "dir", "", "directory of the bus authority (authority.json; stoa dev: DATA/nats)")
		fs.StringVar(&prefix, "prefix", cluster.Default().Prefix, "bucket and subject prefix of the network (cluster prefix)")
	}
	return &command{
		name:    "bus",
		summary: "issue the NATS credentials of a network's nodes and the servers' configuration",
		subcommands: []*command{
			{
				name:    "init",
				summary: "create a bus authority, the nats-server configuration that trusts it, and the console's credentials",
				usage: `stoa bus init --dir DIR

Creates DIR/authority.json (the operator and account keys: secret, keep it offline), DIR/nats-server.conf
(include it in every NATS server's configuration: the servers then accept only credentials the authority
issued) and DIR/console.creds. Refuses to overwrite an existing authority.`,
				flags: dirFlag,
				run: func(ctx context.Context, args []string, env *cmdEnv) error {
					if err := env.parseNoArgs(args); err != nil {
						return err
					}
					if dir == "" {
						return usagef("--dir is required")
					}
					auth, err := busauth.New()
					if err != nil {
						return err
					}
					if err := auth.Save(filepath.Join(dir, authorityFile)); err != nil {
						return err
					}
					conf, err := auth.ServerConfig()
					if err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(dir, "nats-server.conf"), []byte(conf), 0o644); err != nil {
						return err
					}
					creds, err := auth.Issue(busauth.Identity{Role: busauth.RoleConsole}, prefix)
					if err != nil {
						return err
					}
					if err := writePrivate(filepath.Join(dir, consoleCredsFile), creds); err != nil {
						return err
					}
					fmt.Fprintf(env.stdout, "bus authority %s (account %s)\n  server configuration: %s\n  console credentials:  %s\n",
						filepath.Join(dir, authorityFile), auth.Account(), filepath.Join(dir, "nats-server.conf"), filepath.Join(dir, consoleCredsFile))
					return nil
				},
			},
			{
				name:    "issue",
				summary: "issue one node's credentials",
				usage: `stoa bus issue --dir DIR --role edge|dispatch|console [--region eu[,us]] (--id ID | --any-id [--reserve ID,...]) --out FILE

Writes the credentials (a NATS .creds file) of a node: an edge may write only its heartbeat, its channel
placements and its regions' blocks and events; a dispatcher its ticket key and its regions' blocks and events;
the console administers the bus. --any-id issues credentials shared by several nodes of the role (any id but the
reserved ones). Give each production node its own, with --id.`,
				flags: func(fs *flag.FlagSet) {
					dirFlag(fs)
					fs.StringVar(&role, "role", "", "edge, dispatch or console")
					fs.StringVar(&regions, "region", "", "regions the node serves, comma-separated (edge, dispatch)")
					fs.StringVar(&id, "id", "", "the node's id (its --id)")
					fs.BoolVar(&anyID, "any-id", false, "any id of the role (shared credentials)")
					fs.StringVar(&reserve, "reserve", "", "with --any-id: ids the credentials may not act as, comma-separated")
					fs.StringVar(&out, "out", "", "file to write the credentials to (mode 0600)")
				},
				run: func(ctx context.Context, args []string, env *cmdEnv) error {
					if err := env.parseNoArgs(args); err != nil {
						return err
					}
					if dir == "" || out == "" {
						return usagef("--dir and --out are required")
					}
					ident := busauth.Identity{Role: busauth.Role(role), ID: id, AnyID: anyID}
					if regions != "" {
						ident.Regions = strings.Split(regions, ",")
					}
					if err := ident.Validate(); err != nil {
						return usagef("%v", err)
					}
					var reserved []string
					if reserve != "" {
						reserved = strings.Split(reserve, ",")
					}
					auth, err := busauth.Load(filepath.Join(dir, authorityFile))
					if err != nil {
						return err
					}
					creds, err := auth.Issue(ident, prefix, reserved...)
					if err != nil {
						return err
					}
					if err := writePrivate(out, creds); err != nil {
						return err
					}
					fmt.Fprintf(env.stdout, "credentials of %s written to %s\n", ident, out)
					return nil
				},
			},
		},
	}
}
