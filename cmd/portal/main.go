// Command portal is the software distribution portal: the server and the
// command-line clients for administrators, publishers and customers.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

const rootLong = `portal: a self-hosted software distribution portal.

serve runs the server; token create, keys and config work offline on the
configured store, as do backup (also while serve runs), restore, store copy
and objects copy|verify. Every other command is a client of a running portal: it
reads PORTAL_URL, PORTAL_TOKEN and PORTAL_LICENSE (or --url, --token,
--license), prints an aligned table, or the API's JSON objects with --json.

Exit codes:
  0  done
  1  failure: the network, the server (5xx) or a local file
  2  usage error: bad flags or arguments, nothing was sent
  3  refused by the portal (401, 403, 404, 409, 429 and other 4xx):
     its error code and message are printed`

func main() {
	ctx, stop := signalContext()
	code := osCLI().main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// main runs one command line and prints its error; it returns the exit
// code.
func (c cli) main(ctx context.Context, args []string) int {
	err := c.run(ctx, args)
	if err != nil {
		fmt.Fprintf(c.stderr, "portal: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(c.stderr, "run 'portal --help' or 'portal COMMAND --help' for usage")
		}
	}
	return exitCode(err)
}

// run executes one command line through the command tree and returns its
// error without printing it.
func (c cli) run(ctx context.Context, args []string) error {
	root := c.root()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// root builds the command tree. Every error that happens before a
// command's own RunE starts (unknown commands or flags, wrong number of
// arguments, missing required flags) is a usage error.
func (c cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "portal",
		Short:         "a self-hosted software distribution portal",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(c.stderr)
			cmd.Help()
			return usagef("name a command")
		},
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetIn(readerOr(c.stdin))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{fmt.Errorf("%s%w", where(cmd), err)}
	})
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(
		serveCommand(),
		c.tokenCommand(),
		keysCommand(),
		c.backupCommand(),
		c.restoreCommand(),
		c.storeCommand(),
		c.objectsCommand(),
		configCommand(),
		c.publishCommand(),
		c.downloadCommand(),
		c.productCommand(),
		c.releaseCommand(),
		c.licenseCommand(),
		c.linkCommand(),
		c.webhookCommand(),
		c.auditCommand(),
		c.meCommand(),
		c.versionCommand(),
		completionCommand(),
	)
	markUsage(root)
	return root
}

// markUsage wraps every command's Args check, and the required-flag check
// of cobra, so that their errors are usage errors.
func markUsage(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		markUsage(sub)
	}
	if args := cmd.Args; args != nil {
		cmd.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return &usageError{fmt.Errorf("%s%w", where(cmd), err)}
			}
			return nil
		}
	}
	if cmd.RunE != nil && cmd.PreRunE == nil {
		// Cobra checks required flags after PersistentPreRunE and before
		// RunE; its error names the flags. Check here first, so the error
		// is a usage error.
		cmd.PreRunE = func(cmd *cobra.Command, a []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return &usageError{fmt.Errorf("%s%w", where(cmd), err)}
			}
			return nil
		}
	}
}

// where names a command in an error ("license list: "), or nothing for
// the root, which main's "portal: " prefix names already.
func where(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ") + ": "
}

// group is a command that only holds verbs: without one it prints its
// help and fails as a usage error.
func group(use, short string, verbs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			cmd.Help()
			return usagef("%sname a verb", where(cmd))
		},
	}
	cmd.AddCommand(verbs...)
	return cmd
}

func configCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "print the documented default configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := cmd.OutOrStdout().Write(configDefault())
			return err
		},
	}
}
