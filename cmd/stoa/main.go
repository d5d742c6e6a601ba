// Command stoa is the single binary of Stoa, a self-hosted real-time network for voice, video and data in which the
// network never holds the keys to the conversation. Each role and tool is a subcommand; `stoa help` lists them.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal cancels ctx so that running roles drain; a second one forces the exit.
		<-ctx.Done()
		stop()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		fmt.Fprintln(os.Stderr, "stoa: second signal, exiting now")
		os.Exit(130)
	}()
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain runs the command line args and returns the process exit code: 0 on success, 1 when the command failed,
// 2 on a usage error.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return rootCommand().execute(ctx, args, stdout, stderr)
}

func rootCommand() *command {
	return &command{
		name:    "stoa",
		summary: "Stoa: a self-hosted real-time network whose servers never hold the media keys",
		subcommands: []*command{
			tokenCommand(),
			sframeCommand(),
			devCommand(),
			joinCommand(),
			recordCommand(),
			loadtestCommand(),
			edgeCommand(),
			dispatchCommand(),
			clusterCommand(),
			busCommand(),
			auditCommand(),
			consoleCommand(),
			versionCommand(),
		},
	}
}
