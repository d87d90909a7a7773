package state

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"github.com/churnflow/churnflow/operators"
)

// Key kinds: the first byte of every key. The layout, with <p> the partition
// in decimal:
//
//	m/<p>/<member>              member value (memberval.go: entry's due + state)
//	t/<p>/<due:8>/<member>      timer entry, empty value (lazy: <= the Due)
//	o/<p>/<topic>               next input offset, 8-byte big-endian
//	x/<p>/<seq:8>               outbox record (encodeRecord)
//	d/<p>/<event_id>            dedup marker, empty value, entry TTL
//	q/<p>/next                  next outbox sequence number, 8-byte big-endian
//	c/<p>/next                  the changelog's next offset after this state's last write, 8-byte big-endian
//
// <due:8> is the due time in Unix seconds with the sign bit flipped, written
// big-endian ("offset binary"): for the positive times the pipeline uses this
// is the plain big-endian number plus 1<<63, and it keeps negative times
// sorting before positive ones. <seq:8> is plain big-endian. The q key is
// not in DESIGN.md: it keeps outbox sequence numbers monotonic across
// restarts after every record was acknowledged (and deleted).
const (
	kindMember = 'm'
	kindTimer  = 't'
	kindOffset = 'o'
	kindOutbox = 'x'
	kindDedup  = 'd'
	kindSeq    = 'q'
	kindLog    = 'c'
)

// kinds lists every key kind, for scans over a whole partition.
var kinds = [...]byte{kindMember, kindTimer, kindOffset, kindOutbox, kindDedup, kindSeq, kindLog}

// appendPrefix appends "<kind>/<p>/".
func appendPrefix(dst []byte, kind byte, p Partition) []byte {
	dst = append(dst, kind, '/')
	dst = strconv.AppendInt(dst, int64(p), 10)
	return append(dst, '/')
}

func memberKey(dst []byte, p Partition, id operators.MemberID) []byte {
	return append(appendPrefix(dst, kindMember, p), id...)
}

// dueBits maps a time to a uint64 whose big-endian bytes sort like the time.
func dueBits(due int64) uint64 { return uint64(due) ^ 1<<63 }

func timerKey(dst []byte, p Partition, due int64, id operators.MemberID) []byte {
	dst = appendPrefix(dst, kindTimer, p)
	dst = binary.BigEndian.AppendUint64(dst, dueBits(due))
	dst = append(dst, '/')
	return append(dst, id...)
}

// timerBound is the first timer key of partition p due at or after due.
func timerBound(dst []byte, p Partition, due int64) []byte {
	return binary.BigEndian.AppendUint64(appendPrefix(dst, kindTimer, p), dueBits(due))
}

// parseTimer splits a timer key (without its "t/<p>/" prefix).
func parseTimer(rest []byte) (due int64, member []byte, ok bool) {
	if len(rest) < 9 || rest[8] != '/' {
		return 0, nil, false
	}
	return int64(binary.BigEndian.Uint64(rest) ^ 1<<63), rest[9:], true
}

func offsetKey(dst []byte, p Partition, topic string) []byte {
	return append(appendPrefix(dst, kindOffset, p), topic...)
}

func outboxKey(dst []byte, p Partition, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendPrefix(dst, kindOutbox, p), seq)
}

func dedupKey(dst []byte, p Partition, eventID string) []byte {
	return append(appendPrefix(dst, kindDedup, p), eventID...)
}

func seqKey(dst []byte, p Partition) []byte {
	return append(appendPrefix(dst, kindSeq, p), "next"...)
}

func changelogKey(dst []byte, p Partition) []byte {
	return append(appendPrefix(dst, kindLog, p), "next"...)
}

// parsePartition reads the partition of any key ("<kind>/<p>/...").
func parsePartition(key []byte) (Partition, bool) {
	if len(key) < 4 || key[1] != '/' {
		return 0, false
	}
	end := bytes.IndexByte(key[2:], '/')
	if end <= 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(key[2:2+end]), 10, 32)
	if err != nil {
		return 0, false
	}
	return Partition(n), true
}

// afterPrefix returns the smallest key greater than every key that starts
// with prefix, where prefix ends in '/': '/' + 1 is '0', and no longer
// partition number can start with "<p>/".
func afterPrefix(prefix []byte) []byte {
	out := bytes.Clone(prefix)
	out[len(out)-1]++
	return out
}
