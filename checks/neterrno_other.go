//go:build !windows

package checks

import "syscall"

// Connect errors, classified with errors.Is.
var (
	errConnRefused error = syscall.ECONNREFUSED
	errHostUnreach error = syscall.EHOSTUNREACH
	errNetUnreach  error = syscall.ENETUNREACH
)
