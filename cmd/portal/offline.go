package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The commands that open the store themselves (serve, token create, keys)
// keep their own flag parsing; their cobra commands declare the same flags
// for help and completion and hand the ones given on to them.

// forward rebuilds the flags set on cmd's command line as --name=value
// arguments, repeated for repeatable flags, in the order cobra holds them.
func forward(cmd *cobra.Command, args []string) []string {
	var out []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+f.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+f.Name+"="+f.Value.String())
	})
	return append(out, args...)
}

func serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run the portal server (zero config: the embedded default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return serve(forward(cmd, args))
		},
	}
	configFlags(cmd.Flags())
	return cmd
}

// tokenCreateCommand creates a token offline, on the configured store.
func tokenCreateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create --role admin|publisher [--product P]... [--name N]",
		Short: "create an API token offline, on the configured store, and print it once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return token(append([]string{"create"}, forward(cmd, args)...))
		},
	}
	configFlags(cmd.Flags())
	cmd.Flags().String("role", "", "admin or publisher")
	cmd.Flags().String("name", "", "a name to recognise the token by")
	cmd.Flags().StringArray("product", nil, "product a publisher token may publish (repeatable)")
	cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"admin", "publisher"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func keysCommand() *cobra.Command {
	seal := &cobra.Command{
		Use:   "seal",
		Short: "seal every product key still in plaintext with signing.master_key (offline)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return keysSeal(forward(cmd, args), cmd.OutOrStdout())
		},
	}
	configFlags(seal.Flags())
	rotate := &cobra.Command{
		Use:   "rotate --product P [--activate]",
		Short: "stage new signing keys for a product, or activate the staged ones (offline)",
		Long:  keysUsage,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return keysRotate(forward(cmd, args), cmd.OutOrStdout())
		},
	}
	configFlags(rotate.Flags())
	rotate.Flags().String("product", "", "the product whose keys to rotate")
	rotate.Flags().Bool("activate", false, "make the staged keys the signing keys")
	rotate.Flags().Bool("json", false, "print the public keys as JSON")
	rotate.MarkFlagRequired("product")
	k := group("keys", "manage the products' signing keys, offline on the configured store", seal, rotate)
	k.Long = keysUsage
	return k
}
