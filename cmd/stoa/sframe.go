package main

import "context"

// sframeCommand is the `stoa sframe` group; its tools are added with the sframe package.
func sframeCommand() *command {
	return &command{
		name:    "sframe",
		summary: "check SFrame (RFC 9605) end-to-end encryption",
		subcommands: []*command{
			{
				name:    "vectors",
				summary: "check every case of an RFC 9605 JSON test-vector file",
				usage:   "stoa sframe vectors FILE",
				run: func(ctx context.Context, args []string, env *cmdEnv) error {
					return usagef("not implemented yet")
				},
			},
		},
	}
}
