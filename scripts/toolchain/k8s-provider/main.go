package main

import (
	_ "embed"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	// The provider writes the cluster's kubeconfig, credentials included, to a new temporary file
	// each time it is configured (for its Helm client) and never removes it: every preview, up or
	// destroy would leave one in $TMPDIR. It gets a temporary directory of its own instead,
	// removed when it exits (tempdir.go).
	dir, err := claimPrivateTempDir(os.TempDir())
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-kubernetes: no private temporary directory (%v); "+
			"kubeconfig copies will be left in %s\n", err, os.TempDir())
	} else {
		os.Setenv("TMPDIR", dir.path)
		// The engine stops a plugin with SIGINT (SIGKILL 5 s later); Go's default would exit at
		// once without removing anything. The signal is raised again so the exit looks the same.
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-signals
			dir.remove()
			signal.Reset(sig)
			syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		}()
		defer dir.remove()
	}
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
