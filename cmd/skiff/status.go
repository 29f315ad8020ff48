package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/cluster"
)

func newStatusCmd() *cobra.Command {
	var dir, kubeconfig, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the servers, their Raft state and API health",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeconfig == "" {
				lc, err := cluster.LoadLocalCluster(dir)
				if err != nil {
					return fmt.Errorf("no cluster in %s (use --dir or --kubeconfig): %w", dir, err)
				}
				kubeconfig = lc.Kubeconfig
			}
			targets, err := statusTargets(kubeconfig)
			if err != nil {
				return err
			}
			st := cluster.CollectStatus(cmd.Context(), targets)
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tROLE\tRAFT\tHEALTHY\tTERM\tCOMMIT\tAPPLIED\tLAG\tAPI")
			for _, m := range st.Members {
				fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%d\t%d\t%d\t%d\t%s\n", m.Name, m.Role, m.RaftState, m.Healthy, m.Term, m.CommitIndex, m.AppliedIndex, m.Lag, m.APIURL)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir(), "a skiff up cluster's directory")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "a kubeconfig with one context per server")
	cmd.Flags().StringVarP(&output, "output", "o", "", "json for machine-readable output")
	return cmd
}

// statusTargets makes one target per context of the kubeconfig.
func statusTargets(kubeconfig string) ([]cluster.StatusTarget, error) {
	raw, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return nil, err
	}
	var out []cluster.StatusTarget
	for name, ctx := range raw.Contexts {
		rc, err := cluster.RestConfig(kubeconfig, name)
		if err != nil {
			return nil, err
		}
		out = append(out, cluster.StatusTarget{Name: name, APIURL: raw.Clusters[ctx.Cluster].Server, Config: rc})
	}
	slices.SortFunc(out, func(a, b cluster.StatusTarget) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
