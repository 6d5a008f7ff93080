package translate

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// Body errors, wrapped by *BodyError; test with errors.Is.
var (
	// ErrUnsupportedMedia: a content type or charset the gateway cannot
	// translate (SIP 415).
	ErrUnsupportedMedia = errors.New("unsupported media type")
	// ErrBadBody: bytes invalid in their charset, characters XML forbids,
	// or a malformed structured body (SIP 400).
	ErrBadBody = errors.New("body cannot be translated")
	// ErrTooLarge: the body exceeds the gateway's bound (SIP 413).
	ErrTooLarge = errors.New("body too large")
)

// BodyError explains why a message body was refused.
type BodyError struct {
	Found    string
	Expected string
	Fix      string
	Err      error
}

func (e *BodyError) Error() string {
	return fmt.Sprintf("translate: body: %s; expected %s; fix: %s", e.Found, e.Expected, e.Fix)
}

func (e *BodyError) Unwrap() error { return e.Err }

// MaxBody bounds a message body in bytes after transcoding. sipgo refuses
// SIP messages over 65535 bytes anyway (sip.ParseMaxMessageLength).
const MaxBody = 64 << 10

// DecodeText turns a text body declared with charset (the Content-Type
// parameter, "" when absent) into a UTF-8 string fit for an XML text node.
//
// RFC 7572 §4 and RFC 6120 §11.6 want UTF-8 on the XMPP side, so:
//   - no charset: the bytes must already be UTF-8 (RFC 2046's US-ASCII
//     default is a subset); anything else is refused, because guessing is
//     how "????" happens;
//   - UTF-8: the bytes must be valid UTF-8;
//   - another charset: decoded with golang.org/x/text (WHATWG labels first,
//     so ISO-8859-1 decodes as windows-1252 as browsers do, then IANA
//     names); a byte sequence the charset does not define is refused, never
//     replaced with U+FFFD;
//   - the result must hold only characters XML 1.0 §2.2 allows.
func DecodeText(body []byte, charset string) (string, error) {
	if len(body) > MaxBody {
		return "", &BodyError{Found: fmt.Sprintf("%d bytes", len(body)), Expected: fmt.Sprintf("at most %d bytes", MaxBody), Fix: "split the message", Err: ErrTooLarge}
	}
	var text string
	switch {
	case charset == "" || strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "utf8"):
		if i := invalidUTF8(body); i >= 0 {
			if charset == "" {
				return "", &BodyError{
					Found:    fmt.Sprintf("byte 0x%02X at offset %d is not UTF-8 and Content-Type declares no charset", body[i], i),
					Expected: "UTF-8, or a charset parameter naming the encoding",
					Fix:      "send UTF-8, or declare the charset (Content-Type: text/plain;charset=windows-1252)",
					Err:      ErrBadBody,
				}
			}
			return "", &BodyError{
				Found:    fmt.Sprintf("byte 0x%02X at offset %d is invalid although charset=%s is declared", body[i], i, charset),
				Expected: "valid UTF-8",
				Fix:      "declare the charset the sender really uses",
				Err:      ErrBadBody,
			}
		}
		text = string(body)
	case strings.EqualFold(charset, "us-ascii"):
		if i := bytes.IndexFunc(body, func(r rune) bool { return r >= utf8.RuneSelf }); i >= 0 {
			return "", &BodyError{Found: fmt.Sprintf("byte 0x%02X at offset %d with charset=us-ascii", body[i], i), Expected: "7-bit bytes only", Fix: "declare charset=UTF-8 (or the real charset)", Err: ErrBadBody}
		}
		text = string(body)
	default:
		enc, err := lookupCharset(charset)
		if err != nil {
			return "", err
		}
		out, err := enc.NewDecoder().Bytes(body)
		if err != nil {
			return "", &BodyError{Found: fmt.Sprintf("bytes invalid in charset %s (%v)", charset, err), Expected: "text in the declared charset", Fix: "declare the charset the sender really uses", Err: ErrBadBody}
		}
		// x/text decoders substitute U+FFFD for undefined sequences. A
		// legitimate U+FFFD survives a round trip; a substitution does not.
		if bytes.Contains(out, []byte("\uFFFD")) {
			back, err := enc.NewEncoder().Bytes(out)
			if err != nil || !bytes.Equal(back, body) {
				i := bytes.Index(out, []byte("\uFFFD"))
				return "", &BodyError{Found: fmt.Sprintf("bytes near decoded offset %d are not defined in charset %s", i, charset), Expected: "text in the declared charset", Fix: "declare the charset the sender really uses", Err: ErrBadBody}
			}
		}
		text = string(out)
	}
	if err := checkXMLChars(text); err != nil {
		return "", err
	}
	return text, nil
}

// lookupCharset finds an x/text encoding for a MIME charset name.
func lookupCharset(name string) (encoding.Encoding, error) {
	var enc encoding.Encoding
	var err error
	// WHATWG labels first (ISO-8859-1 senders mostly mean windows-1252),
	// except UTF-16, where MIME (RFC 2781) honours and strips the BOM and
	// WHATWG keeps it as U+FEFF.
	if len(name) < 6 || !strings.EqualFold(name[:6], "utf-16") {
		enc, err = htmlindex.Get(name)
	}
	if err != nil || enc == nil {
		enc, err = ianaindex.IANA.Encoding(name)
	}
	// htmlindex maps some dangerous labels (ISO-2022-KR, HZ…) to the WHATWG
	// "replacement" encoding, which outputs only U+FFFD: refuse it.
	if err != nil || enc == nil || enc == encoding.Replacement {
		return nil, &BodyError{Found: fmt.Sprintf("charset %q, which the gateway does not know", name), Expected: "a charset registered with IANA (UTF-8, ISO-8859-x, windows-125x, KOI8-R, Shift_JIS, EUC-JP, GB18030, Big5…)", Fix: "send UTF-8", Err: ErrUnsupportedMedia}
	}
	return enc, nil
}

// invalidUTF8 returns the offset of the first byte that is not UTF-8, or -1.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// checkXMLChars refuses characters outside XML 1.0 §2.2 Char (C0 controls
// other than tab, LF and CR; U+FFFE; U+FFFF). s must be valid UTF-8.
func checkXMLChars[T string | []byte](s T) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf {
			continue
		}
		if c < 0x20 {
			if c == '\t' || c == '\n' || c == '\r' {
				continue
			}
			return xmlCharErr(rune(c), i)
		}
		// U+FFFE and U+FFFF are EF BF BE / EF BF BF.
		if c == 0xEF && i+2 < len(s) && s[i+1] == 0xBF && (s[i+2] == 0xBE || s[i+2] == 0xBF) {
			r := rune(0xFFFE)
			if s[i+2] == 0xBF {
				r = 0xFFFF
			}
			return xmlCharErr(r, i)
		}
	}
	return nil
}

func xmlCharErr(r rune, i int) error {
	return &BodyError{
		Found:    fmt.Sprintf("character U+%04X at byte %d, which XML 1.0 forbids (XMPP cannot carry it, RFC 6120 §11.1)", r, i),
		Expected: "text without control characters other than tab, CR and LF",
		Fix:      "remove the control character at the sender",
		Err:      ErrBadBody,
	}
}

// mediaType splits a Content-Type value into its lower-cased type/subtype
// and its charset parameter (unquoted, as written), without allocating for
// the usual "text/plain; charset=UTF-8".
func mediaType(v string) (typ, charset string) {
	typ, params, _ := strings.Cut(v, ";")
	typ = strings.TrimSpace(typ)
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, val, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "charset") {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		charset = val
	}
	if !isLowerASCII(typ) {
		typ = strings.ToLower(typ)
	}
	return typ, charset
}

func isLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return false
		}
	}
	return true
}
