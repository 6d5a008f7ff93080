//go:build windows

package cmd

import (
	"context"

	"golang.org/x/sys/windows/svc"
)

// serviceName is the name `sc.exe create` registers (see README, Packages).
const serviceName = "xgw"

// runAsService runs the command line (usually `xgw serve --config ...`)
// under the Windows service manager when it started us, and reports false
// otherwise.
func runAsService(run func(context.Context) int) (int, bool) {
	is, err := svc.IsWindowsService()
	if err != nil || !is {
		return 0, false
	}
	h := &serviceHandler{run: run}
	if err := svc.Run(serviceName, h); err != nil {
		return 1, true
	}
	return h.code, true
}

type serviceHandler struct {
	run  func(context.Context) int
	code int
}

// Execute reports Running, then cancels the command's context on Stop or
// Shutdown, which xgw serve treats like SIGTERM: a graceful stop.
func (h *serviceHandler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case h.code = <-done:
			status <- svc.Status{State: svc.Stopped}
			return false, uint32(h.code)
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
			}
		}
	}
}
