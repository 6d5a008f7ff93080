package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in the config file. Its message names the file, line,
// key, the value found, what was expected and the fix.
type Error struct {
	File     string
	Line     int
	Key      string
	Found    string
	Expected string
	Fix      string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("config")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": found %s, expected %s", e.Found, e.Expected)
	if e.Fix != "" {
		fmt.Fprintf(&b, "; fix: %s", e.Fix)
	}
	return b.String()
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// LoadFile reads and validates the file at path.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w (fix: pass --config FILE or set XGW_CONFIG; see xgw.example.yaml)", err)
	}
	return Load(path, bytes.NewReader(data))
}

// Load decodes and validates a config read from r; name is used in messages.
// The returned error is an Errors value listing every problem.
func Load(name string, r io.Reader) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(r)
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Found: "an empty file", Expected: "a YAML mapping with sip:, xmpp: and tls:", Fix: "start from xgw.example.yaml"}}
		}
		return nil, Errors{{File: name, Line: yamlErrLine(err), Found: "invalid YAML (" + err.Error() + ")", Expected: "well-formed YAML", Fix: "check indentation and quoting at that line"}}
	}
	c := &Config{File: name, lines: map[string]int{}}
	d := decoder{file: name, lines: c.lines}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	d.decode(doc, "", reflect.ValueOf(c).Elem())
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	c.applyDefaults()
	if errs := c.Validate(); len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

func yamlErrLine(err error) int {
	var line int
	if _, e := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); e == nil {
		return line
	}
	return 0
}

// decoder walks the YAML node tree beside the Go value so every error knows
// its key path and line; yaml's own Decode loses both for unknown keys.
type decoder struct {
	file  string
	lines map[string]int
	errs  Errors
}

var durationType = reflect.TypeFor[Duration]()

func (d *decoder) fail(n *yaml.Node, path, found, expected, fix string) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Key: path, Found: found, Expected: expected, Fix: fix})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Value == "" {
		return "an empty value"
	}
	return strconv.Quote(n.Value)
}

func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	if path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with nothing after it keeps the default
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case v.Type() == durationType:
		dur, err := time.ParseDuration(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil || dur <= 0 {
			d.fail(n, path, describe(n), "a positive duration such as 5s or 1500ms", "write it with a unit: 5s")
			return
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.Struct:
		d.decodeStruct(n, path, v)
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, describe(n), "a list", "write it as [a, b] or as lines starting with '- '")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
		}
		v.Set(s)
	case v.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, describe(n), "a string", "write a single value")
			return
		}
		v.SetString(n.Value)
	case v.Kind() == reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.fail(n, path, describe(n), "an integer", "write a number without quotes")
			return
		}
		v.SetInt(int64(i))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.fail(n, path, describe(n), "true or false", "write true or false")
			return
		}
		v.SetBool(b)
	default:
		panic("config: unsupported field type " + v.Type().String())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, describe(n), "a mapping of keys", "indent the keys below it")
		return
	}
	fields := map[string]int{}
	var names []string
	for i := 0; i < v.NumField(); i++ {
		tag := v.Type().Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			d.fail(k, key, "unknown key "+strconv.Quote(k.Value), "one of "+strings.Join(names, ", "), "fix the spelling or remove the key")
			continue
		}
		if seen[k.Value] {
			d.fail(k, key, "the key a second time", "each key once", "remove one of them")
			continue
		}
		seen[k.Value] = true
		d.decode(val, key, v.Field(idx))
		d.lines[key] = k.Line
	}
}
