package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// streams are the process's standard streams and environment, injected so
// that tests run commands in-process.
type streams struct {
	in     io.Reader
	out    io.Writer
	err    io.Writer
	getenv func(string) (string, bool)
}

func stdStreams() streams {
	return streams{in: os.Stdin, out: os.Stdout, err: os.Stderr, getenv: os.LookupEnv}
}

// Exit codes.
const (
	exitOK    = 0
	exitFatal = 1 // the command started and failed
	exitUsage = 2 // the command line (or environment) is wrong
)

// usageError is a mistake on the command line or in a CHURNFLOW_*
// variable: it exits with exitUsage and points at --help.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// newRootCmd builds the command tree. Each subcommand lives in its own
// file and is added here; every flag of every subcommand can also be set
// from the environment (env.go).
func newRootCmd(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "churnflow",
		Short: "Streaming churn detection for travel loyalty programmes",
		Long: `churnflow watches a loyalty programme's booking and activity events and tells
retention teams which members are falling asleep, which valuable members show
churn risk, and whom to nudge (tier upgrade, keeping a tier, first redemption,
a hotel for a booked flight). It keeps per-member state (LRFMC figures, value
segment, life-cycle stage) and fires timers in event time, so members who send
nothing are acted on too.

Every flag can also be set with an environment variable CHURNFLOW_<FLAG>
(upper case, dashes as underscores, e.g. CHURNFLOW_SORT_MEMORY=1GiB); a flag
on the command line wins over the environment.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Subcommands must not set their own PersistentPreRunE: it would
		// replace this one (cobra runs only the nearest).
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd, s.getenv)
		},
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.SetFlagErrorFunc(flagError)
	root.CompletionOptions.HiddenDefaultCmd = true
	root.AddCommand(newDemoCmd(s), newReplayCmd(s), newGenCmd(s), newBrokerCmd(s), newRunCmd(s), newInspectCmd(s), newFitCmd(s),
		newBenchCmd(s), newBenchPhaseCmd(s))
	return root
}

// flagError turns pflag's parse errors into "--flag: what is wrong".
func flagError(cmd *cobra.Command, err error) error {
	var iv *pflag.InvalidValueError
	if errors.As(err, &iv) {
		cause := iv.Unwrap()
		if cause == nil {
			cause = err
		}
		return usagef("--%s: %v", iv.GetFlag().Name, cause)
	}
	return &usageError{err}
}

// execute runs the command line and returns the process exit code.
func execute(ctx context.Context, args []string, s streams) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(s.err, "churnflow: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		if cmd != nil {
			fmt.Fprintf(s.err, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	return exitFatal
}

// isCobraUsage recognises cobra's own argument errors (unknown command,
// bad positional arguments), which carry no type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires ", "unknown flag", "unknown shorthand", "flag needs an argument"} {
		if len(msg) >= len(p) && (msg[:len(p)] == p) {
			return true
		}
	}
	return false
}
