//go:build !windows

package checks

import "syscall"

// Bind errors, classified with errors.Is.
var (
	errAddrInUse    error = syscall.EADDRINUSE
	errAddrNotAvail error = syscall.EADDRNOTAVAIL
)
