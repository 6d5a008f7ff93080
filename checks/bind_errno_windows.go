package checks

import "syscall"

// Bind errors, classified with errors.Is: Winsock returns its own codes,
// not the invented syscall.EADDRINUSE of package syscall on Windows.
var (
	errAddrInUse    error = syscall.Errno(10048) // WSAEADDRINUSE
	errAddrNotAvail error = syscall.Errno(10049) // WSAEADDRNOTAVAIL
)
