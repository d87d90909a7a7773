package replay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/churnflow/churnflow/operators"
)

// CSVMapping says how the rows of a CSV export become churnflow events.
// Each row is converted to the event JSON of DESIGN.md ("Events in") and
// decoded by the same operators.Decoder as JSONL input, so validation is
// identical. An empty cell means the field is absent.
//
// The zero value maps every column whose header is a churnflow field name
// to that field and reads occurred_at as RFC 3339.
type CSVMapping struct {
	// Columns maps churnflow field names (event_id, type, member_id,
	// occurred_at, amount, ...) to the CSV column holding them. Fields not
	// listed are read from a column with the field's own name, if any.
	Columns map[string]string `yaml:"columns"`
	// Constants gives values for fields the export lacks (for example
	// type: booking). A constant is used when the field has no column or
	// its cell is empty.
	Constants map[string]string `yaml:"constants"`
	// TimeLayout is the Go time layout of occurred_at when it is not RFC
	// 3339 (for example "2006-01-02 15:04:05"). Empty: RFC 3339.
	TimeLayout string `yaml:"time_layout"`
	// TimeZone is the IANA zone that occurred_at values without an offset
	// are in (for example "Asia/Shanghai"). Empty: UTC.
	TimeZone string `yaml:"time_zone"`
	// Delimiter is the field separator, one character. Empty: a comma.
	Delimiter string `yaml:"delimiter"`
}

// LoadCSVMapping reads a YAML CSVMapping; unknown keys are an error. The
// result is validated.
func LoadCSVMapping(r io.Reader) (CSVMapping, error) {
	var m CSVMapping
	data, err := io.ReadAll(r)
	if err != nil {
		return m, fmt.Errorf("read csv mapping: %w", err)
	}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
			return m, fmt.Errorf("parse csv mapping: %w", err)
		}
	}
	return m, m.Validate()
}

type fieldKind uint8

const (
	kindString fieldKind = iota
	kindNumber
	kindTime
)

// eventFields lists the event fields in schema order, with their JSON kind.
var eventFields = []struct {
	name string
	kind fieldKind
}{
	{"event_id", kindString}, {"type", kindString}, {"member_id", kindString},
	{"occurred_at", kindTime}, {"amount", kindNumber}, {"currency", kindString},
	{"distance_km", kindNumber}, {"segments", kindNumber}, {"discount", kindNumber},
	{"product", kindString}, {"channel", kindString}, {"origin", kindString},
	{"destination", kindString}, {"trip_start", kindString}, {"trip_end", kindString},
	{"trip_id", kindString}, {"booking_id", kindString}, {"tier", kindString},
	{"region", kindString}, {"account_manager", kindString}, {"points", kindNumber},
	{"points_balance", kindNumber},
}

// FieldNames lists the churnflow event fields a CSVMapping may name.
func FieldNames() []string {
	names := make([]string, len(eventFields))
	for i, f := range eventFields {
		names[i] = f.name
	}
	return names
}

func fieldIndex(name string) int {
	for i, f := range eventFields {
		if f.name == name {
			return i
		}
	}
	return -1
}

// Validate reports the first setting that is wrong, naming its key.
func (m *CSVMapping) Validate() error {
	known := "fields: " + strings.Join(FieldNames(), ", ")
	for _, k := range sortedKeys(m.Columns) {
		if fieldIndex(k) < 0 {
			return fmt.Errorf("csv mapping columns.%s: no such event field (%s)", k, known)
		}
		if m.Columns[k] == "" {
			return fmt.Errorf("csv mapping columns.%s: empty column name", k)
		}
	}
	for _, k := range sortedKeys(m.Constants) {
		if fieldIndex(k) < 0 {
			return fmt.Errorf("csv mapping constants.%s: no such event field (%s)", k, known)
		}
	}
	if m.TimeLayout != "" {
		// A layout must at least carry a year, month and day.
		ref := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
		if _, err := time.Parse(m.TimeLayout, ref.Format(m.TimeLayout)); err != nil || !strings.Contains(m.TimeLayout, "2006") {
			return fmt.Errorf("csv mapping time_layout: %q is not a Go time layout with a year (example: \"2006-01-02 15:04:05\")", m.TimeLayout)
		}
	}
	if _, err := m.location(); err != nil {
		return err
	}
	if utf8Len(m.Delimiter) > 1 || m.Delimiter == "\"" || m.Delimiter == "\n" || m.Delimiter == "\r" {
		return fmt.Errorf("csv mapping delimiter: %q must be one character other than a quote or newline", m.Delimiter)
	}
	return nil
}

func utf8Len(s string) int { return len([]rune(s)) }

func (m *CSVMapping) location() (*time.Location, error) {
	if m.TimeZone == "" || m.TimeZone == "UTC" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(m.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("csv mapping time_zone: %q is not an IANA time zone (example: Asia/Shanghai)", m.TimeZone)
	}
	return loc, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// csvMapper is a validated CSVMapping ready to convert rows.
type csvMapper struct {
	m      CSVMapping
	loc    *time.Location
	consts []string // per field, "" if none
	comma  rune
}

func newCSVMapper(m CSVMapping) (*csvMapper, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	loc, _ := m.location()
	c := &csvMapper{m: m, loc: loc, consts: make([]string, len(eventFields)), comma: ','}
	for k, v := range m.Constants {
		c.consts[fieldIndex(k)] = v
	}
	if m.Delimiter != "" {
		c.comma = []rune(m.Delimiter)[0]
	}
	return c, nil
}

// resolve finds each field's column in the header.
func (c *csvMapper) resolve(header []string) ([]int, error) {
	pos := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		if _, dup := pos[h]; !dup {
			pos[h] = i
		}
	}
	cols := make([]int, len(eventFields))
	for i, f := range eventFields {
		cols[i] = -1
		if name, ok := c.m.Columns[f.name]; ok {
			j, found := pos[name]
			if !found {
				return nil, fmt.Errorf("csv mapping columns.%s: column %q is not in the header (columns: %s)", f.name, name, strings.Join(header, ", "))
			}
			cols[i] = j
		} else if j, found := pos[f.name]; found {
			cols[i] = j
		}
	}
	for _, req := range []string{"event_id", "type", "member_id", "occurred_at"} {
		i := fieldIndex(req)
		if cols[i] < 0 && c.consts[i] == "" {
			return nil, fmt.Errorf("csv mapping: no column for %s (map it under columns, or give it under constants); header columns: %s", req, strings.Join(header, ", "))
		}
	}
	return cols, nil
}

// convert appends the event JSON of one row to dst. Numbers that parse go
// out as JSON numbers and anything else as a string, so that the decoder
// names the field in its error. A time that does not match the layout is
// rejected here with the decoder's reason code.
func (c *csvMapper) convert(dst []byte, row []string, cols []int) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	for i, f := range eventFields {
		v := ""
		if j := cols[i]; j >= 0 && j < len(row) {
			v = strings.TrimSpace(row[j])
		}
		if v == "" {
			v = c.consts[i]
		}
		if v == "" {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, f.name...)
		dst = append(dst, '"', ':')
		switch f.kind {
		case kindNumber:
			if x, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(x, 0) && !math.IsNaN(x) {
				dst = strconv.AppendFloat(dst, x, 'g', -1, 64)
				continue
			}
		case kindTime:
			if c.m.TimeLayout != "" {
				t, err := time.ParseInLocation(c.m.TimeLayout, v, c.loc)
				if err != nil {
					return dst, &operators.ValidationError{
						Reason: operators.ReasonInvalidField, Field: f.name,
						Problem: fmt.Sprintf("%q does not match the time layout %q", truncateText(v, 60), c.m.TimeLayout),
					}
				}
				dst = append(dst, '"')
				dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
				dst = append(dst, '"')
				continue
			}
		}
		dst = appendJSONString(dst, v)
	}
	return append(dst, '}'), nil
}

// appendJSONString appends s as a JSON string literal. Bytes are copied as
// they are (invalid UTF-8 included) so that the decoder judges them.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == '"' || b == '\\':
			dst = append(dst, '\\', b)
		case b < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
		default:
			dst = append(dst, b)
		}
	}
	return append(dst, '"')
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
