//go:build !windows

package cmd

import "context"

// runAsService reports false: only Windows has a service manager that
// starts xgw without a console (systemd runs it as a plain process).
func runAsService(func(context.Context) int) (int, bool) { return 0, false }
