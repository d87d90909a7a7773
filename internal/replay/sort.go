package replay

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"unsafe"

	"github.com/churnflow/churnflow/operators"
)

// entry indexes one held event: its time, where its encoding starts in the
// arena and its position in the chunk (input order), the tie-breaker that
// keeps equal times in input order. It holds no pointer, so the GC does not
// scan the index.
type entry struct {
	t   int64
	off uint32
	seq uint32
}

const entrySize = int64(unsafe.Sizeof(entry{}))

// Bounds of one chunk, so that offsets and positions fit in an entry.
const (
	maxArenaBytes   = min(math.MaxUint32, math.MaxInt)
	maxChunkEntries = min(math.MaxUint32, math.MaxInt)
	// minArenaBytes is the first arena allocation (capped by the budget).
	minArenaBytes = 64 << 10
	// minEventBytes is less than any encoding's size (appendEvent).
	minEventBytes = 6
)

func (a entry) cmp(b entry) int {
	switch {
	case a.t < b.t:
		return -1
	case a.t > b.t:
		return 1
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// sorter orders events by (occurred_at, input sequence) with bounded memory:
// an external merge sort. Events are held in a chunk until it reaches the
// byte budget; a full chunk is sorted and spilled to a run file in a private
// temporary directory. At the end, a single chunk is sorted in memory, and
// otherwise the runs (and the last chunk) are merged with a heap.
//
// A chunk is an append-only arena of encoded events (appendEvent) and an
// index of entries, sorted by (time, position) when the chunk is full
// unless the events came in time order; the budget counts the arena and
// index bytes. Neither holds pointers, and both are reused from one chunk
// to the next.
//
// A run file holds, per event in (time, sequence) order: uvarint length of
// the encoding, varint occurred_at, uvarint input sequence, then the
// encoding.
type sorter struct {
	budget  int64
	tempDir string // parent of dir
	dir     string // private directory for runs, created on first spill
	arena   []byte
	index   []entry
	// sorted: the index is in (time, position) order (the events came in
	// time order so far); last is the time of the last event added.
	sorted bool
	last   int64
	base   int64 // input sequence of the chunk's first event
	runs   []string
	files  []*os.File
}

func newSorter(budget int64, tempDir string) *sorter {
	return &sorter{budget: budget, tempDir: tempDir}
}

// used returns the bytes the chunk holds, as counted against the budget.
func (s *sorter) used() int64 {
	return int64(len(s.arena)) + int64(len(s.index))*entrySize
}

// add copies e into the current chunk, spilling the chunk when it is full.
func (s *sorter) add(e *operators.Event) error {
	size := maxEventSize(e)
	if len(s.index) > 0 && (len(s.arena)+size > maxArenaBytes || len(s.index) >= maxChunkEntries) {
		if err := s.spill(); err != nil {
			return err
		}
	}
	if len(s.arena)+size > cap(s.arena) {
		s.growArena(size)
	}
	if len(s.index) == cap(s.index) {
		s.growIndex()
	}
	if len(s.index) == 0 {
		s.sorted = true
	} else if e.OccurredAt < s.last {
		s.sorted = false
	}
	s.last = e.OccurredAt
	s.index = append(s.index, entry{t: e.OccurredAt, off: uint32(len(s.arena)), seq: uint32(len(s.index))})
	s.arena = appendEvent(s.arena, e)
	if s.used() >= s.budget {
		return s.spill()
	}
	return nil
}

// growArena makes room for n more bytes: the capacity doubles, but not
// beyond what the budget lets the chunk hold.
func (s *sorter) growArena(n int) {
	need := len(s.arena) + n
	c := max(2*cap(s.arena), need, minArenaBytes)
	if limit := s.budget + int64(n); int64(c) > limit {
		c = int(max(limit, int64(need)))
	}
	c = min(c, max(need, maxArenaBytes))
	a := make([]byte, len(s.arena), c)
	copy(a, s.arena)
	s.arena = a
}

// growIndex makes room for more entries, doubling the capacity up to what
// the budget lets the chunk hold.
func (s *sorter) growIndex() {
	c := max(2*cap(s.index), 1024)
	if limit := s.budget/(entrySize+minEventBytes) + 1; int64(c) > limit {
		c = int(max(limit, int64(len(s.index))+1))
	}
	s.index = slices.Grow(s.index, c-len(s.index))
}

// sortChunk puts the index in (time, position) order.
func (s *sorter) sortChunk() {
	if !s.sorted {
		slices.SortFunc(s.index, entry.cmp)
		s.sorted = true
	}
}

func (s *sorter) spill() error {
	if len(s.index) == 0 {
		return nil
	}
	if s.dir == "" {
		dir, err := os.MkdirTemp(s.tempDir, "churnflow-replay-*")
		if err != nil {
			return fmt.Errorf("create sort directory: %w", err)
		}
		s.dir = dir
	}
	s.sortChunk()
	name := filepath.Join(s.dir, fmt.Sprintf("run-%06d", len(s.runs)))
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("create sort run: %w", err)
	}
	s.runs = append(s.runs, name)
	w := bufio.NewWriterSize(f, 256<<10)
	for _, en := range s.index {
		body := s.arena[en.off:]
		n, derr := skipEvent(body)
		if derr != nil {
			err = fmt.Errorf("sort chunk: %w", derr)
			break
		}
		var hdr [3 * binary.MaxVarintLen64]byte
		h := binary.PutUvarint(hdr[:], uint64(n))
		h += binary.PutVarint(hdr[h:], en.t)
		h += binary.PutUvarint(hdr[h:], uint64(s.base)+uint64(en.seq))
		if _, err := w.Write(hdr[:h]); err != nil {
			break
		}
		if _, err := w.Write(body[:n]); err != nil {
			break
		}
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write sort run: %w", err)
	}
	s.base += int64(len(s.index))
	s.arena = s.arena[:0]
	s.index = s.index[:0]
	return nil
}

// skipEvent returns the length of the encoding at the start of b. It reads
// only what locates the end, so it trusts the arena (written by
// appendEvent); decodeEvent checks everything.
func skipEvent(b []byte) (int, error) {
	d := eventDecoder{b: b}
	if _, ok := d.uvarint(); !ok {
		return 0, errBadEvent
	}
	d.i++ // type
	if d.i > len(b) {
		return 0, errBadEvent
	}
	if _, ok := d.varint(); !ok || len(b)-d.i < presentBytes {
		return 0, errBadEvent
	}
	present := uint32(b[d.i]) | uint32(b[d.i+1])<<8 | uint32(b[d.i+2])<<16
	d.i += presentBytes
	for slot := range numNumberSlots {
		if present&(1<<slot) == 0 {
			continue
		}
		switch slot {
		case slotAmount, slotDistance, slotDiscount:
			d.i += 8
		case slotProduct:
			d.i++
		default:
			if _, ok := d.varint(); !ok {
				return 0, errBadEvent
			}
		}
		if d.i > len(b) {
			return 0, errBadEvent
		}
	}
	total := 0
	for i := range numStringSlots {
		if present&(1<<(numNumberSlots+i)) == 0 {
			continue
		}
		n, ok := d.uvarint()
		if !ok || n > uint64(len(b)) {
			return 0, errBadEvent
		}
		total += int(n)
	}
	if total > len(b)-d.i {
		return 0, errBadEvent
	}
	return d.i + total, nil
}

// spills returns the number of run files written.
func (s *sorter) spills() int { return len(s.runs) }

// iterator yields events in (occurred_at, sequence) order. The strings of
// the Event it fills are newly allocated: the Event stays valid after the
// next call.
type iterator interface {
	next(e *operators.Event) (bool, error)
}

// finish returns an iterator over everything added.
func (s *sorter) finish() (iterator, error) {
	s.sortChunk()
	if len(s.runs) == 0 {
		return &memIter{arena: s.arena, index: s.index}, nil
	}
	m := &mergeIter{}
	for _, name := range s.runs {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("open sort run: %w", err)
		}
		s.files = append(s.files, f)
		m.srcs = append(m.srcs, &source{r: bufio.NewReaderSize(f, 64<<10), name: name})
	}
	if len(s.index) > 0 {
		m.srcs = append(m.srcs, &source{arena: s.arena, index: s.index, base: s.base})
	}
	return m, m.init()
}

// close removes the run files. It is safe to call more than once.
func (s *sorter) close() error {
	var errs []error
	for _, f := range s.files {
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.files = nil
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove sort directory: %w", err))
		}
		s.dir = ""
	}
	s.arena, s.index = nil, nil
	return errors.Join(errs...)
}

// memIter yields a sorted chunk.
type memIter struct {
	arena []byte
	index []entry
	i     int
}

func (m *memIter) next(e *operators.Event) (bool, error) {
	if m.i >= len(m.index) {
		return false, nil
	}
	if _, err := decodeEvent(m.arena[m.index[m.i].off:], e); err != nil {
		return false, fmt.Errorf("decode held event: %w", err)
	}
	m.i++
	return true, nil
}

// source is one sorted run being merged: a run file (r != nil) or the last
// chunk, held in memory.
type source struct {
	// Head: the current event's time and input sequence.
	t, seq int64

	// Run file.
	r       *bufio.Reader
	name    string
	pending int // encoding bytes of the current event not yet read
	buf     []byte

	// Chunk.
	arena []byte
	index []entry
	base  int64
	i     int // index of the current entry + 1
}

// advance moves to the next event; false at the end.
func (s *source) advance() (bool, error) {
	if s.r == nil {
		if s.i >= len(s.index) {
			return false, nil
		}
		en := s.index[s.i]
		s.i++
		s.t, s.seq = en.t, s.base+int64(en.seq)
		return true, nil
	}
	if s.pending > 0 {
		if _, err := s.r.Discard(s.pending); err != nil {
			return false, s.readErr(noEOF(err))
		}
		s.pending = 0
	}
	n, err := binary.ReadUvarint(s.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, s.readErr(err)
	}
	t, err := binary.ReadVarint(s.r)
	if err != nil {
		return false, s.readErr(noEOF(err))
	}
	seq, err := binary.ReadUvarint(s.r)
	if err != nil {
		return false, s.readErr(noEOF(err))
	}
	if n > maxArenaBytes || seq > math.MaxInt64 {
		return false, fmt.Errorf("read sort run %s: corrupt header", filepath.Base(s.name))
	}
	s.t, s.seq, s.pending = t, int64(seq), int(n)
	return true, nil
}

// decode decodes the current event into e.
func (s *source) decode(e *operators.Event) error {
	if s.r == nil {
		if _, err := decodeEvent(s.arena[s.index[s.i-1].off:], e); err != nil {
			return fmt.Errorf("decode held event: %w", err)
		}
		return nil
	}
	n := s.pending
	var b []byte
	var err error
	if n <= s.r.Size() {
		b, err = s.r.Peek(n)
	} else {
		s.buf = slices.Grow(s.buf[:0], n)[:n]
		b = s.buf
		_, err = io.ReadFull(s.r, b)
		s.pending = 0
	}
	if err != nil {
		return s.readErr(noEOF(err))
	}
	got, err := decodeEvent(b, e)
	if err == nil && (got != n || e.OccurredAt != s.t) {
		err = errBadEvent
	}
	if err != nil {
		return fmt.Errorf("decode spilled event in %s: %w", filepath.Base(s.name), err)
	}
	return nil
}

func (s *source) readErr(err error) error {
	return fmt.Errorf("read sort run %s: %w", filepath.Base(s.name), err)
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// mergeIter is a k-way merge of sorted sources on (occurred_at, sequence).
type mergeIter struct {
	srcs []*source
	h    srcHeap
	// started: the top source's event was handed out and must advance
	// before the next one is.
	started bool
}

func (m *mergeIter) init() error {
	for _, s := range m.srcs {
		ok, err := s.advance()
		if err != nil {
			return err
		}
		if ok {
			m.h = append(m.h, s)
		}
	}
	heap.Init(&m.h)
	return nil
}

func (m *mergeIter) next(e *operators.Event) (bool, error) {
	if m.started && len(m.h) > 0 {
		ok, err := m.h[0].advance()
		if err != nil {
			return false, err
		}
		if ok {
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
	}
	m.started = true
	if len(m.h) == 0 {
		return false, nil
	}
	if err := m.h[0].decode(e); err != nil {
		return false, err
	}
	return true, nil
}

type srcHeap []*source

func (h srcHeap) Len() int { return len(h) }
func (h srcHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.t != b.t {
		return a.t < b.t
	}
	return a.seq < b.seq
}
func (h srcHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *srcHeap) Push(x any)   { *h = append(*h, x.(*source)) }
func (h *srcHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}
