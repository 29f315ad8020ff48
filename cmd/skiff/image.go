package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/nodeagent/image"
)

// newImageCmd manages a node's local images, for nodes that cannot reach a registry.
func newImageCmd() *cobra.Command {
	var dataDir string
	store := func() (*image.Store, error) { return image.NewStore(filepath.Join(dataDir, "agent", "images")) }
	cmd := &cobra.Command{Use: "image", Short: "Import, list and remove a node's images"}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "/var/lib/skiff", "the agent's data directory")
	cmd.AddCommand(&cobra.Command{
		Use:   "import FILE.tar",
		Short: "Import images from a docker save tarball or an OCI layout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			imgs, err := s.Import(cmd.Context(), args[0])
			for _, img := range imgs {
				fmt.Fprintf(cmd.OutOrStdout(), "imported %s\n", img.Ref)
			}
			return err
		},
	}, &cobra.Command{
		Use:   "ls",
		Short: "List images",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			imgs, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "IMAGE\tDIGEST")
			for _, img := range imgs {
				fmt.Fprintf(w, "%s\t%s\n", img.Ref, img.Digest)
			}
			return w.Flush()
		},
	}, &cobra.Command{
		Use:   "rm IMAGE",
		Short: "Remove an image (and the layers no other image uses)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			return s.Remove(cmd.Context(), args[0])
		},
	})
	return cmd
}
