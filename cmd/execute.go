// Package cmd is xgw's command line: thin cobra commands that parse flags
// and hand the work to checks, report and gateway.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xgw-gateway/xgw/report"
)

// exitError carries an exit code chosen by a command, with an optional
// message for stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError marks bad flags or a bad config: exit 2, nothing probed.
func usageError(err error) error {
	return &exitError{code: report.ExitUsage, msg: err.Error()}
}

// Main runs xgw and returns the process exit code. It is the only place that
// maps errors to exit codes.
func Main() int {
	// Started by the Windows service manager: it stops us, not a signal.
	if code, ok := runAsService(execute); ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return execute(ctx)
}

// execute runs the command line of os.Args until ctx ends.
func execute(ctx context.Context) int {
	root := NewRootCmd(SystemStreams())
	err := root.ExecuteContext(ctx)
	return exitCode(err, root.ErrOrStderr())
}

func exitCode(err error, stderr interface{ Write([]byte) (int, error) }) int {
	if err == nil {
		return report.ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "xgw:", ee.msg)
		}
		return ee.code
	}
	// cobra's own flag and argument errors are usage errors.
	fmt.Fprintln(stderr, "xgw:", err)
	return report.ExitUsage
}
