package state

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
)

// Packed outbox entries.
//
// A batch's outbox records used to be one Badger entry each, and each
// acknowledgement one more (a delete): with an alert or two and a changelog
// record per event, most of the entries and bytes a batch wrote, through
// the memtable, the write-ahead log and every compaction, were outbox
// records that lived for a few milliseconds (churnflow bench, issue 8).
// Commit now writes the records of each transaction as one entry, keyed by
// the first record's seq: the value is packedMagic, the record count, then
// per record the seq's distance from the first and the record's encoding,
// length-prefixed. Values over the value threshold go to Badger's value log
// (sequential, outside the LSM tree), and an acknowledged batch costs one
// delete. An entry holding one record is written as before (the record's
// own encoding), so stores written before packing read as they were.
//
// Acknowledgements come per record. The store keeps, per partition, which
// entry each pending packed record is in and how many of the entry's
// records are not acknowledged yet (outboxIndex); the entry is deleted when
// the last is. The index lives in memory: after a restart, Outbox rebuilds
// it from the entries, and a partly acknowledged entry is sent again in
// full (at least once).
//
// Commit compresses the packed records (packedS2Magic): the record count
// stays readable, the rest is one S2 block (Snappy-compatible, from
// klauspost/compress). The alerts, most of an outbox's bytes (segment
// changes and dormancy alerts: 666 of the 863 bytes per event at 1,000,000
// members; the changelog's copies of member states 154), are JSON that
// repeats its field names, and a batch's records repeat their topics and
// header names (replayed alert JSON alone: 4.4 × smaller at ten alerts per
// entry, 8.5 × at a thousand; benchmarks/RESULTS.md, thirteenth sitting). Every byte saved is one Badger does not copy into the value
// log (or, for a small batch's entry, through the memtable, level 0 and the
// compactions) and that value-log GC does not reclaim.
//
// Except for one size band: an entry over Badger's value threshold (64
// KiB) goes to the value log, one under it through the LSM tree, and an
// entry that would cross that line when compressed is written as it is.
// Compressing those too, moving them into the LSM tree, made the p99 at
// 20,000 events/s worse (churnflow bench, thirteenth sitting: 463-864 ms
// in four runs against 443-584 uncompressed, interleaved; likely the
// memtable flushes and compactions the latency's bursts come from); with
// the band left uncompressed, 380 and 395 ms against 427 and 583. The
// value log at the end of the end-to-end phase: 474 MB instead of 2,631.
// Uncompressed entries (packedMagic), those and the ones of earlier
// builds, read as before.

// packedMagic starts an uncompressed packed entry's value, packedS2Magic a
// compressed one; a single record's value starts with recordVersion.
const (
	packedMagic   = 0xB7
	packedS2Magic = 0xB8
)

// appendPacked appends the packed value of records (seqs ascending, first
// = seqs[0]) whose encodings are encs.
func appendPacked(dst []byte, seqs []uint64, encs [][]byte) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, e := range encs {
		n += 2*binary.MaxVarintLen64 + len(e)
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, packedMagic)
	dst = binary.AppendUvarint(dst, uint64(len(seqs)))
	for i, seq := range seqs {
		dst = binary.AppendUvarint(dst, seq-seqs[0])
		dst = appendBytes(dst, encs[i])
	}
	return dst
}

// outboxValue returns what Commit writes for plain, an uncompressed packed
// value: its compressed form, built in *buf (reused across commits),
// unless compressing would move the entry from the value log into the LSM
// tree (the size band above), then plain itself.
func outboxValue(buf *[]byte, plain []byte) []byte {
	*buf = compressPacked((*buf)[:0], plain)
	if int64(len(plain)) >= valueThreshold && int64(len(*buf)) < valueThreshold {
		return plain
	}
	return *buf
}

// compressPacked appends the compressed form (packedS2Magic) of plain, an
// uncompressed packed value (appendPacked's).
func compressPacked(dst, plain []byte) []byte {
	_, w := binary.Uvarint(plain[1:])
	head := 1 + w // the magic and the record count
	dst = append(dst, packedS2Magic)
	dst = append(dst, plain[1:head]...)
	dst = slices.Grow(dst, s2.MaxEncodedLen(len(plain)-head))
	block := s2.Encode(dst[len(dst):cap(dst)], plain[head:])
	return dst[:len(dst)+len(block)]
}

// decodeOutboxValue calls fn for each record of an outbox entry's value,
// packed (compressed or not) or single; first is the seq in the entry's
// key. The records alias v, or for a compressed entry a buffer of their
// own.
func decodeOutboxValue(first uint64, v []byte, fn func(seq uint64, rec OutboxRecord) error) error {
	if len(v) == 0 || (v[0] != packedMagic && v[0] != packedS2Magic) {
		rec, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("outbox record %d: %w", first, err)
		}
		return fn(first, rec)
	}
	data := v[1:]
	n, w := binary.Uvarint(data)
	if w <= 0 {
		return fmt.Errorf("outbox entry %d: %w: bad record count", first, errRecordCorrupt)
	}
	data = data[w:]
	if v[0] == packedS2Magic {
		var err error
		if data, err = s2.Decode(nil, data); err != nil {
			return fmt.Errorf("outbox entry %d: %w: %w", first, errRecordCorrupt, err)
		}
	}
	if n > uint64(len(data)) {
		return fmt.Errorf("outbox entry %d: %w: bad record count", first, errRecordCorrupt)
	}
	for range n {
		d, w := binary.Uvarint(data)
		if w <= 0 {
			return fmt.Errorf("outbox entry %d: %w: truncated", first, errRecordCorrupt)
		}
		data = data[w:]
		l, w := binary.Uvarint(data)
		if w <= 0 || l > uint64(len(data)-w) {
			return fmt.Errorf("outbox entry %d: %w: truncated", first, errRecordCorrupt)
		}
		enc := data[w : w+int(l) : w+int(l)]
		data = data[w+int(l):]
		rec, err := decodeRecord(enc)
		if err != nil {
			return fmt.Errorf("outbox record %d: %w", first+d, err)
		}
		if err := fn(first+d, rec); err != nil {
			return err
		}
	}
	if len(data) != 0 {
		return fmt.Errorf("outbox entry %d: %w: trailing bytes", first, errRecordCorrupt)
	}
	return nil
}

// packedCount returns how many records an outbox entry's value holds.
func packedCount(v []byte) int64 {
	if len(v) < 2 || (v[0] != packedMagic && v[0] != packedS2Magic) {
		return 1
	}
	n, w := binary.Uvarint(v[1:])
	if w <= 0 {
		return 1
	}
	return int64(n)
}

// outboxIndex maps each pending record of a packed entry to the entry, and
// counts each entry's records not yet acknowledged. Safe for concurrent
// use: the worker commits while its sender acknowledges.
type outboxIndex struct {
	mu        sync.Mutex
	entry     map[uint64]uint64 // record seq -> entry (first) seq
	remaining map[uint64]int    // entry seq -> records not acknowledged
}

// add registers a packed entry; records already registered are left as
// they are (Outbox rescanning an entry Commit registered).
func (x *outboxIndex) add(first uint64, seqs []uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.remaining[first]; ok {
		return
	}
	if x.entry == nil {
		x.entry, x.remaining = map[uint64]uint64{}, map[uint64]int{}
	}
	for _, s := range seqs {
		x.entry[s] = first
	}
	x.remaining[first] = len(seqs)
}

// known reports whether seq's entry is registered and seq is still pending
// in it, or the entry is not registered at all (then everything in it is
// pending).
func (x *outboxIndex) pending(first, seq uint64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.remaining[first]; !ok {
		return true
	}
	_, ok := x.entry[seq]
	return ok
}

// ack marks seqs acknowledged and returns the entries to delete: those
// whose last record this was, and the seqs of records in no packed entry
// (single-record entries).
func (x *outboxIndex) ack(seqs []uint64) (del []uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range seqs {
		first, ok := x.entry[s]
		if !ok {
			if _, isEntry := x.remaining[s]; !isEntry {
				del = append(del, s) // a single record, or acknowledged twice (harmless)
			}
			continue
		}
		delete(x.entry, s)
		if x.remaining[first]--; x.remaining[first] == 0 {
			delete(x.remaining, first)
			del = append(del, first)
		}
	}
	return del
}

// reset forgets the partition's entries (the partition was dropped).
func (x *outboxIndex) reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.entry, x.remaining = nil, nil
}
