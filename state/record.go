package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// errRecordCorrupt is returned (wrapped) for an outbox value that does not
// decode.
var errRecordCorrupt = errors.New("state: corrupt outbox record")

const recordVersion = 1

// appendRecord appends the encoding of r: a version byte, then
// length-prefixed (uvarint) topic, key and value, the header count and each
// header's name and value, names in ascending order so that the encoding is
// deterministic.
func appendRecord(dst []byte, r *OutboxRecord) []byte {
	dst = append(dst, recordVersion)
	dst = appendBytes(dst, r.Topic)
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
	if len(r.Headers) == 0 {
		return dst
	}
	var names [8]string
	keys := names[:0]
	for k := range r.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = appendBytes(dst, k)
		dst = appendBytes(dst, r.Headers[k])
	}
	return dst
}

func appendBytes[T string | []byte](dst []byte, b T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decodeRecord decodes what appendRecord wrote. Key and Value alias data.
func decodeRecord(data []byte) (OutboxRecord, error) {
	var r OutboxRecord
	if len(data) == 0 || data[0] != recordVersion {
		return r, fmt.Errorf("%w: bad version", errRecordCorrupt)
	}
	data = data[1:]
	next := func() ([]byte, bool) {
		n, w := binary.Uvarint(data)
		if w <= 0 || n > uint64(len(data)-w) {
			return nil, false
		}
		b := data[w : w+int(n) : w+int(n)]
		data = data[w+int(n):]
		return b, true
	}
	topic, ok1 := next()
	key, ok2 := next()
	val, ok3 := next()
	if !ok1 || !ok2 || !ok3 {
		return r, fmt.Errorf("%w: truncated", errRecordCorrupt)
	}
	r.Topic = string(topic)
	if len(key) > 0 {
		r.Key = key
	}
	if len(val) > 0 {
		r.Value = val
	}
	n, w := binary.Uvarint(data)
	if w <= 0 || n > uint64(len(data)) {
		return r, fmt.Errorf("%w: bad header count", errRecordCorrupt)
	}
	data = data[w:]
	if n > 0 {
		r.Headers = make(map[string]string, n)
		for range n {
			k, ok1 := next()
			v, ok2 := next()
			if !ok1 || !ok2 {
				return r, fmt.Errorf("%w: truncated header", errRecordCorrupt)
			}
			r.Headers[string(k)] = string(v)
		}
	}
	if len(data) != 0 {
		return r, fmt.Errorf("%w: trailing bytes", errRecordCorrupt)
	}
	return r, nil
}
