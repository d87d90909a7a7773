// Command churnflow is the churn-detection pipeline's one binary; see
// "churnflow --help" and root.go.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], stdStreams())
	stop()
	os.Exit(code)
}
