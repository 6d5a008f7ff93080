package trace

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fatih/color"
)

// maxLine bounds one record when reading a trace: a stanza is at most the
// stanza limit, a SIP message the SIP limit, both far below this.
const maxLine = 16 << 20

// Filter selects records for `xgw trace`.
type Filter struct {
	// Grep matches a Call-ID, stream ID, thread or domain exactly, or any
	// part of the peer address or the message (case-insensitive).
	Grep string
	// Proto keeps one protocol ("sip", "xmpp", "dns"); "" keeps all.
	Proto string
}

// Match reports whether r passes the filter. The trace's own notes
// (dropped records) always pass, so gaps are visible.
func (f Filter) Match(r Record) bool {
	if r.Proto == "xgw" {
		return true
	}
	if f.Proto != "" && !strings.EqualFold(f.Proto, r.Proto) {
		return false
	}
	if f.Grep == "" {
		return true
	}
	g := strings.ToLower(f.Grep)
	for _, v := range []string{r.CallID, r.Stream, r.Thread, r.Local, r.Remote} {
		if v != "" && strings.ToLower(v) == g {
			return true
		}
	}
	return strings.Contains(strings.ToLower(r.Peer), g) || strings.Contains(strings.ToLower(r.Msg), g)
}

// Printer renders records for a person: a header line per record (time,
// arrow, protocol, peer, domains, IDs), then the message, XML indented and
// SIP as it was.
type Printer struct {
	w                         io.Writer
	in, out, note, faint, bol *color.Color
}

// NewPrinter prints to w, in colour when useColor. Its colours are its
// own, switched explicitly, never through the global color.NoColor.
func NewPrinter(w io.Writer, useColor bool) *Printer {
	p := &Printer{w: w, in: color.New(color.FgCyan), out: color.New(color.FgGreen),
		note: color.New(color.FgYellow), faint: color.New(color.Faint), bol: color.New(color.Bold)}
	for _, c := range []*color.Color{p.in, p.out, p.note, p.faint, p.bol} {
		if useColor {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
	}
	return p
}

// Print writes one record.
func (p *Printer) Print(r Record) error {
	ts := r.Time.UTC().Format("2006-01-02 15:04:05.000000")
	if r.Proto == "xgw" {
		_, err := fmt.Fprintf(p.w, "%s %s\n\n", p.faint.Sprint(ts), p.note.Sprint("** "+r.Note))
		return err
	}
	arrow, c, pair := "<-", p.in, r.Local+" <- "+r.Remote
	if r.Dir == Out {
		arrow, c, pair = "->", p.out, r.Local+" -> "+r.Remote
	}
	var ids []string
	for _, kv := range [][2]string{{"stream", r.Stream}, {"call-id", r.CallID}, {"thread", r.Thread}} {
		if kv[1] != "" {
			ids = append(ids, kv[0]+"="+kv[1])
		}
	}
	if r.Local == "" && r.Remote == "" {
		pair = ""
	}
	head := fmt.Sprintf("%s %s %s %s", p.faint.Sprint(ts), c.Sprint(arrow), p.bol.Sprint(strings.ToUpper(r.Proto)), r.Peer)
	if pair != "" {
		head += "  " + pair
	}
	if len(ids) > 0 {
		head += "  " + p.faint.Sprint(strings.Join(ids, " "))
	}
	if r.Redacted {
		head += " " + p.faint.Sprint("(redacted)")
	}
	body := r.Msg
	switch r.Proto {
	case "xmpp":
		body = IndentXML(body)
	case "sip":
		body = strings.ReplaceAll(body, "\r\n", "\n")
	}
	body = strings.TrimRight(body, "\n")
	_, err := fmt.Fprintf(p.w, "%s\n%s\n\n", head, body)
	return err
}

// IndentXML lays out an XML fragment one element per line, indented by
// two spaces per level; an element holding only text stays on one line.
// Unparsable input is returned as it is.
func IndentXML(s string) string {
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = false
	var toks []xml.Token
	for {
		t, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s
		}
		toks = append(toks, xml.CopyToken(t))
	}
	var b strings.Builder
	depth := 0
	line := func() {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(strings.Repeat("  ", depth))
	}
	for i := 0; i < len(toks); i++ {
		switch t := toks[i].(type) {
		case xml.ProcInst:
			line()
			fmt.Fprintf(&b, "<?%s %s?>", t.Target, t.Inst)
		case xml.StartElement:
			line()
			b.WriteString("<" + rawName(t.Name))
			for _, a := range t.Attr {
				b.WriteString(" " + rawName(a.Name) + "='")
				xml.EscapeText(&b, []byte(a.Value))
				b.WriteString("'")
			}
			// <x/>, <x>text</x> stay on one line.
			if i+1 < len(toks) {
				if _, ok := toks[i+1].(xml.EndElement); ok {
					b.WriteString("/>")
					i++
					continue
				}
				if cd, ok := toks[i+1].(xml.CharData); ok && i+2 < len(toks) {
					if _, ok := toks[i+2].(xml.EndElement); ok {
						b.WriteString(">")
						xml.EscapeText(&b, cd)
						b.WriteString("</" + rawName(t.Name) + ">")
						i += 2
						continue
					}
				}
			}
			b.WriteString(">")
			depth++
		case xml.EndElement:
			if depth > 0 {
				depth--
			}
			line()
			b.WriteString("</" + rawName(t.Name) + ">")
		case xml.CharData:
			if txt := strings.TrimSpace(string(t)); txt != "" {
				line()
				xml.EscapeText(&b, []byte(txt))
			}
		case xml.Comment:
			line()
			b.WriteString("<!--" + string(t) + "-->")
		case xml.Directive:
			line()
			b.WriteString("<!" + string(t) + ">")
		}
	}
	return b.String()
}

func rawName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// Read calls fn for each record of r that passes f. A line that is not a
// record is an error naming its number.
func Read(r io.Reader, f Filter, fn func(Record) error) error {
	_, err := readFrom(bufio.NewReaderSize(r, 64<<10), f, fn, 0)
	return err
}

// readFrom reads whole lines; it returns the bytes consumed, leaving a
// trailing partial line (a record being written) unread.
func readFrom(br *bufio.Reader, f Filter, fn func(Record) error, lineNo int) (int64, error) {
	var n int64
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(long) > maxLine {
					return n, fmt.Errorf("trace line %d: longer than %d bytes, expected one JSON record per line", lineNo+1, maxLine)
				}
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil // a partial last line waits for its end
			}
			return n, err
		}
		n += int64(len(line))
		lineNo++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return n, fmt.Errorf("trace line %d: %w (expected a JSON record as written by xgw serve --trace)", lineNo, err)
		}
		if f.Match(rec) {
			if err := fn(rec); err != nil {
				return n, err
			}
		}
	}
}

// Follow prints path's records as Read does, then keeps reading what is
// appended until ctx ends, polling every interval; when the file is
// rotated (replaced by a new one) it continues with the new file.
func Follow(ctx context.Context, path string, interval time.Duration, f Filter, fn func(Record) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { file.Close() }()
	var off int64
	for {
		if _, err := file.Seek(off, io.SeekStart); err != nil {
			return err
		}
		n, err := readFrom(bufio.NewReaderSize(file, 64<<10), f, fn, 0)
		if err != nil {
			return err
		}
		off += n
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		// Rotated: the path names another file, or ours shrank.
		cur, err1 := os.Stat(path)
		mine, err2 := file.Stat()
		if err1 == nil && err2 == nil && (!os.SameFile(cur, mine) || mine.Size() < off) {
			// Finish ours (now FILE.k), then FILE.k-1 ... FILE.1 written
			// since, then start over on the new FILE.
			if _, err := file.Seek(off, io.SeekStart); err == nil {
				if _, err := readFrom(bufio.NewReaderSize(file, 64<<10), f, fn, 0); err != nil {
					return err
				}
			}
			for i := rotatedIndex(path, mine) - 1; i >= 1; i-- {
				if err := readWhole(fmt.Sprintf("%s.%d", path, i), f, fn); err != nil {
					return err
				}
			}
			nf, err := os.Open(path)
			if err != nil {
				return err
			}
			file.Close()
			file, off = nf, 0
		}
	}
}

// rotatedIndex is k when FILE.k is the file fi, else 0.
func rotatedIndex(path string, fi os.FileInfo) int {
	for i := 1; i <= 1000; i++ {
		st, err := os.Stat(fmt.Sprintf("%s.%d", path, i))
		if err != nil {
			return 0
		}
		if os.SameFile(st, fi) {
			return i
		}
	}
	return 0
}

func readWhole(path string, f Filter, fn func(Record) error) error {
	fh, err := os.Open(path)
	if err != nil {
		return nil // rotated away meanwhile
	}
	defer fh.Close()
	_, err = readFrom(bufio.NewReaderSize(fh, 64<<10), f, fn, 0)
	return err
}
