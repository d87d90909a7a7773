package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix starts the environment variable of every flag.
const envPrefix = "CHURNFLOW_"

// envName returns the variable that sets a flag: CHURNFLOW_ and the flag's
// name in upper case with dashes as underscores (--sort-memory:
// CHURNFLOW_SORT_MEMORY).
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag of cmd (its own and inherited) that was not given
// on the command line from its environment variable, if set. A value the
// flag refuses is a usage error naming the variable. The root command runs
// it before every subcommand, so each subcommand gets it by declaring flags.
func applyEnv(cmd *cobra.Command, getenv func(string) (string, bool)) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		v, ok := getenv(name)
		if !ok {
			return
		}
		if serr := f.Value.Set(v); serr != nil {
			err = usagef("%s: %v", name, serr)
			return
		}
		f.Changed = true
	})
	return err
}
