package gen

import (
	"bufio"
	"fmt"
	"io"
)

// WriteJSONL writes cfg's population to w as JSON lines, one record per
// line in event-time order, and returns what it wrote.
func WriteJSONL(w io.Writer, cfg Config) (Stats, error) {
	s, err := NewStream(cfg)
	if err != nil {
		return Stats{}, err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var rec Record
	var line []byte
	var n int64
	for s.Next(&rec) {
		line = append(rec.AppendJSON(line[:0]), '\n')
		if _, err := bw.Write(line); err != nil {
			st := s.Stats()
			st.Bytes = n
			return st, fmt.Errorf("write records: %w", err)
		}
		n += int64(len(line))
	}
	st := s.Stats()
	st.Bytes = n
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("write records: %w", err)
	}
	return st, nil
}
