package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/churnflow/churnflow/operators"
)

// Format is the layout of a replay input.
type Format uint8

// Input formats. FormatAuto decides from the data: after gzip is undone,
// input whose first non-blank byte is '{' is JSONL, anything else CSV.
const (
	FormatAuto Format = iota
	FormatJSONL
	FormatCSV
)

// String returns the format's flag name.
func (f Format) String() string {
	switch f {
	case FormatJSONL:
		return "jsonl"
	case FormatCSV:
		return "csv"
	}
	return "auto"
}

// ParseFormat maps "auto", "jsonl" or "csv" to a Format.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "auto", "":
		return FormatAuto, nil
	case "jsonl", "json":
		return FormatJSONL, nil
	case "csv":
		return FormatCSV, nil
	}
	return FormatAuto, fmt.Errorf("%q is not an input format (auto, jsonl, csv)", s)
}

// ReasonInvalidCSV labels a CSV row that could not be read or has the wrong
// number of fields. It complements the decoder's operators.Reason codes.
const ReasonInvalidCSV operators.Reason = "invalid_csv"

// record is one input record: the JSON to decode, the text to show in the
// rejects file, and its line number.
type record struct {
	line int64
	json []byte
	raw  []byte
	err  error // conversion failed before decoding (CSV); a *ValidationError
}

// recordReader yields records until io.EOF. The returned record and its
// slices are valid until the next call.
type recordReader interface {
	next() (*record, error)
}

var gzipMagic = []byte{0x1f, 0x8b}

// openInput undoes gzip (detected by its magic bytes, not the file name)
// and picks the format.
func openInput(r io.Reader, format Format, m *csvMapper, maxBytes int) (recordReader, Format, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if head, _ := br.Peek(2); bytes.Equal(head, gzipMagic) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, format, fmt.Errorf("read gzip header: %w", err)
		}
		br = bufio.NewReaderSize(gz, 1<<20)
	}
	if format == FormatAuto {
		format = sniff(br)
	}
	if format == FormatCSV {
		cr, err := newCSVReader(br, m)
		return cr, format, err
	}
	return &jsonlReader{r: br, max: maxBytes}, format, nil
}

// sniff looks at the first non-blank byte (after a UTF-8 byte order mark).
func sniff(br *bufio.Reader) Format {
	head, _ := br.Peek(4096)
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n")
	if len(head) == 0 || head[0] == '{' {
		return FormatJSONL
	}
	return FormatCSV
}

// jsonlReader reads one JSON object per line. Blank lines are skipped; a
// line longer than max is cut (the decoder then rejects it as oversize)
// and the rest of it discarded.
type jsonlReader struct {
	r    *bufio.Reader
	max  int
	line int64
	buf  []byte
	rec  record
}

func (j *jsonlReader) next() (*record, error) {
	for {
		j.line++
		j.buf = j.buf[:0]
		var err error
		for {
			var chunk []byte
			chunk, err = j.r.ReadSlice('\n')
			if len(j.buf) <= j.max {
				j.buf = append(j.buf, chunk...)
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read line %d: %w", j.line, err)
		}
		data := bytes.TrimRight(j.buf, "\r\n")
		if j.line == 1 {
			data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
		}
		if len(bytes.TrimSpace(data)) == 0 {
			if err != nil { // EOF
				return nil, io.EOF
			}
			continue
		}
		j.rec = record{line: j.line, json: data, raw: data}
		return &j.rec, nil
	}
}

// csvReader converts CSV rows to event JSON with a column mapping.
type csvReader struct {
	r      *csv.Reader
	m      *csvMapper
	cols   []int // per field, the column index or -1
	ncols  int
	rec    record
	buf    []byte
	rawBuf bytes.Buffer
	raw    *csv.Writer
}

func newCSVReader(br *bufio.Reader, m *csvMapper) (*csvReader, error) {
	r := csv.NewReader(br)
	r.Comma = m.comma
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("csv input is empty: a header row is needed")
	}
	if err != nil {
		return nil, fmt.Errorf("read csv header: %w", err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	cols, err := m.resolve(header)
	if err != nil {
		return nil, err
	}
	c := &csvReader{r: r, m: m, cols: cols, ncols: len(header)}
	c.raw = csv.NewWriter(&c.rawBuf)
	c.raw.Comma = m.comma
	return c, nil
}

func (c *csvReader) next() (*record, error) {
	row, err := c.r.Read()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	c.rec = record{}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		c.rec.line = int64(pe.StartLine)
		c.rec.err = &operators.ValidationError{Reason: ReasonInvalidCSV, Problem: "unreadable CSV row: " + pe.Err.Error()}
		c.rec.raw = c.encodeRaw(row)
		return &c.rec, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read csv: %w", err)
	}
	line, _ := c.r.FieldPos(0)
	c.rec.line = int64(line)
	c.rec.raw = c.encodeRaw(row)
	if len(row) != c.ncols {
		c.rec.err = &operators.ValidationError{Reason: ReasonInvalidCSV, Problem: fmt.Sprintf("row has %d fields, the header has %d", len(row), c.ncols)}
		return &c.rec, nil
	}
	c.buf, c.rec.err = c.m.convert(c.buf[:0], row, c.cols)
	c.rec.json = c.buf
	return &c.rec, nil
}

// encodeRaw re-encodes a row as one CSV line for the rejects file.
func (c *csvReader) encodeRaw(row []string) []byte {
	c.rawBuf.Reset()
	_ = c.raw.Write(row) // a bytes.Buffer does not fail
	c.raw.Flush()
	return bytes.TrimRight(c.rawBuf.Bytes(), "\r\n")
}

// validUTF8 replaces invalid UTF-8 so that rejects stay readable JSON.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\ufffd")
}
