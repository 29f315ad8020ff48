package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// benchResult is what a benchmark subcommand prints and saves.
type benchResult interface {
	WriteTable(io.Writer) error
	WriteJSONFile(path string) error
}

// benchSelf is this binary (the servers and agents a benchmark starts run it) and the
// command line, for the report.
func benchSelf() (exe, command string, err error) {
	exe, err = os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("own binary: %w", err)
	}
	return exe, "skiff " + strings.Join(os.Args[1:], " "), nil
}

// testImageBeside resolves --test-image-binary: given, or testimage beside exe; it must exist.
func testImageBeside(exe, given, bench string) (string, error) {
	if given == "" {
		given = filepath.Join(filepath.Dir(exe), "testimage")
	}
	if _, err := os.Stat(given); err != nil {
		return "", fmt.Errorf("bench %s: the test image binary (make testimage, or --test-image-binary): %w", bench, err)
	}
	return given, nil
}

// writeBenchResult prints res's table to stdout and, with out set, writes its JSON there.
func writeBenchResult(cmd *cobra.Command, res benchResult, out string) error {
	if err := res.WriteTable(cmd.OutOrStdout()); err != nil {
		return err
	}
	if out != "" {
		if err := res.WriteJSONFile(out); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "bench: wrote %s\n", out)
	}
	return nil
}
