package state

import (
	"encoding/binary"
	"fmt"

	"github.com/churnflow/churnflow/operators"
)

// A member's value (key m/<p>/<member>) is
//
//	memberValTag, varint(indexed), operators.MemberState encoding
//
// where indexed is the due time of the member's one timer entry
// (t/<p>/<indexed>/<member>), 0 if it has none. The timers index is lazy
// (see Batch): the entry may be earlier than the state's Due, never later,
// and exists exactly when Due is not 0. A value without the tag (written
// before the index was lazy) is a bare state encoding whose entry is at its
// Due; operators' encodings start with their version byte, which is small,
// so the two cannot be confused.
const memberValTag = 0xFE

// appendMemberVal appends the tag and indexed; the caller appends the state.
func appendMemberVal(dst []byte, indexed int64) []byte {
	return binary.AppendVarint(append(dst, memberValTag), indexed)
}

// splitMemberVal splits a member value into its indexed due and its state
// encoding. legacy reports an untagged value, whose indexed due is its
// state's Due (not decoded here: indexed is 0).
func splitMemberVal(v []byte) (indexed int64, enc []byte, legacy bool, err error) {
	if len(v) == 0 || v[0] != memberValTag {
		return 0, v, true, nil
	}
	idx, n := binary.Varint(v[1:])
	if n <= 0 {
		return 0, nil, false, fmt.Errorf("%w: bad timer index prefix", operators.ErrStateCorrupt)
	}
	return idx, v[1+n:], false, nil
}

// decodeMemberVal decodes a member value's state into dst and returns the
// due time of the timer entry the value describes (see indexedDue).
func decodeMemberVal(v []byte, dst *operators.MemberState) (indexed int64, err error) {
	idx, enc, legacy, err := splitMemberVal(v)
	if err != nil {
		return 0, err
	}
	if err := operators.DecodeState(enc, dst); err != nil {
		return 0, err
	}
	if legacy {
		return dst.Due, nil
	}
	return idx, nil
}

// indexedDue returns the due time of the timer entry a member value
// describes; prevDue is the state's Due as the caller read it, which is
// the entry of a legacy value.
func indexedDue(v []byte, prevDue int64) (int64, error) {
	idx, _, legacy, err := splitMemberVal(v)
	if legacy {
		return prevDue, nil
	}
	return idx, err
}
