package checks

import "syscall"

// Connect errors, classified with errors.Is: Winsock returns its own codes,
// not the invented syscall.ECONNREFUSED of package syscall on Windows.
var (
	errConnRefused error = syscall.Errno(10061) // WSAECONNREFUSED
	errHostUnreach error = syscall.Errno(10065) // WSAEHOSTUNREACH
	errNetUnreach  error = syscall.Errno(10051) // WSAENETUNREACH
)
