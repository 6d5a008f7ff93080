package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// rotating is a file capped at maxSize bytes: a write that would pass the
// cap first renames FILE to FILE.1 (FILE.1 to FILE.2, ...) and starts a new
// FILE, keeping maxFiles files in all. Written by one goroutine only.
type rotating struct {
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
	// header is written first in every new file.
	header func() Record
}

func openRotating(path string, maxSize int64, maxFiles int) (*rotating, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("trace: %w (expected a writable directory for the trace file)", err)
	}
	r := &rotating{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rotating) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("trace: %w (under systemd, the trace file must be below ReadWritePaths, e.g. /var/lib/xgw)", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("trace: %w", err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

func (r *rotating) writeHeader() {
	line, err := json.Marshal(r.header())
	if err != nil {
		return
	}
	n, _ := r.f.Write(append(line, '\n'))
	r.size += int64(n)
}

// Write takes whole lines (the Tracer writes batches of them). A line that
// would pass the cap goes to a new file: FILE is rotated first, unless it
// is still empty (a single line larger than the cap is written anyway). A
// rotated-to file starts with the header record.
func (r *rotating) Write(p []byte) (int, error) {
	if r.f == nil {
		return 0, os.ErrClosed
	}
	written := 0
	for len(p) > 0 {
		// The longest run of whole lines that fits.
		n := 0
		for n < len(p) {
			i := bytes.IndexByte(p[n:], '\n')
			end := len(p)
			if i >= 0 {
				end = n + i + 1
			}
			if r.size+int64(end) > r.maxSize && (n > 0 || r.size > 0) {
				break
			}
			n = end
		}
		if n == 0 {
			if err := r.rotate(); err != nil {
				return written, err
			}
			continue
		}
		m, err := r.f.Write(p[:n])
		r.size += int64(m)
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (r *rotating) rotate() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	r.f = nil
	os.Remove(r.name(r.maxFiles - 1))
	for i := r.maxFiles - 2; i >= 0; i-- {
		if err := os.Rename(r.name(i), r.name(i+1)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("trace: rotate: %w", err)
		}
	}
	if err := r.open(); err != nil {
		return err
	}
	if r.header != nil {
		r.writeHeader()
	}
	return nil
}

// name is FILE for 0, FILE.i otherwise.
func (r *rotating) name(i int) string {
	if i == 0 {
		return r.path
	}
	return fmt.Sprintf("%s.%d", r.path, i)
}

func (r *rotating) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
