package cmd

import (
	"bytes"
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// Streams are the command's standard streams and what is known about the
// terminal behind stdout.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutTTY reports whether Out is a terminal (colour is on by default then).
	OutTTY bool
	// Getenv reads the environment (NO_COLOR, XGW_CONFIG).
	Getenv func(string) string
}

// SystemStreams are the process's own.
func SystemStreams() *Streams {
	return &Streams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		OutTTY: isatty.IsTerminal(os.Stdout.Fd()) || isatty.IsCygwinTerminal(os.Stdout.Fd()),
		Getenv: os.Getenv,
	}
}

// TestStreams returns streams writing to buffers, with an empty environment.
func TestStreams() (*Streams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return &Streams{In: &bytes.Buffer{}, Out: out, ErrOut: errOut, Getenv: func(string) string { return "" }}, out, errOut
}
