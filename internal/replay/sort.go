package replay

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"unsafe"

	"github.com/churnflow/churnflow/operators"
)

// item is an event with its position in the input, the tie-breaker that
// keeps equal times in file order.
type item struct {
	seq int64
	ev  operators.Event
}

// itemOverhead is what one held event costs besides its string bytes.
const itemOverhead = int64(unsafe.Sizeof(item{}))

// eventBytes estimates the string bytes an event holds (they share one
// allocation per decoded event).
func eventBytes(e *operators.Event) int64 {
	return int64(len(e.ID) + len(e.TypeName) + len(e.MemberID) + len(e.Currency) +
		len(e.ProductName) + len(e.Channel) + len(e.Origin) + len(e.Destination) +
		len(e.TripID) + len(e.BookingID) + len(e.Tier) + len(e.Region) + len(e.AccountManager))
}

// sorter orders events by (occurred_at, input sequence) with bounded memory:
// an external merge sort. Events are held in a chunk until it reaches the
// byte budget; a full chunk is sorted and spilled to a run file in a private
// temporary directory. At the end, a single chunk is sorted in memory, and
// otherwise the runs (and the last chunk) are merged with a heap.
//
// A run file holds, per event: uvarint length of the event JSON, varint
// occurred_at, uvarint sequence, then the JSON (operators.Event.AppendJSON),
// which decodes back to an equal Event.
type sorter struct {
	budget  int64
	tempDir string // parent of dir
	dir     string // private directory for runs, created on first spill
	chunk   []item
	used    int64
	seq     int64
	runs    []string
	buf     []byte
	files   []*os.File
}

func newSorter(budget int64, tempDir string) *sorter {
	return &sorter{budget: budget, tempDir: tempDir}
}

// add copies e into the current chunk, spilling the chunk when it is full.
func (s *sorter) add(e *operators.Event) error {
	s.chunk = append(s.chunk, item{seq: s.seq, ev: *e})
	s.seq++
	s.used += itemOverhead + eventBytes(e)
	if s.used >= s.budget {
		return s.spill()
	}
	return nil
}

func sortChunk(c []item) {
	// The chunk is in input order, so a stable sort by time orders it by
	// (time, sequence).
	slices.SortStableFunc(c, func(a, b item) int {
		switch {
		case a.ev.OccurredAt < b.ev.OccurredAt:
			return -1
		case a.ev.OccurredAt > b.ev.OccurredAt:
			return 1
		}
		return 0
	})
}

func (s *sorter) spill() error {
	if len(s.chunk) == 0 {
		return nil
	}
	if s.dir == "" {
		dir, err := os.MkdirTemp(s.tempDir, "churnflow-replay-*")
		if err != nil {
			return fmt.Errorf("create sort directory: %w", err)
		}
		s.dir = dir
	}
	sortChunk(s.chunk)
	name := filepath.Join(s.dir, fmt.Sprintf("run-%06d", len(s.runs)))
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("create sort run: %w", err)
	}
	s.runs = append(s.runs, name)
	w := bufio.NewWriterSize(f, 256<<10)
	for i := range s.chunk {
		it := &s.chunk[i]
		s.buf = it.ev.AppendJSON(s.buf[:0])
		var hdr [3 * binary.MaxVarintLen64]byte
		n := binary.PutUvarint(hdr[:], uint64(len(s.buf)))
		n += binary.PutVarint(hdr[n:], it.ev.OccurredAt)
		n += binary.PutUvarint(hdr[n:], uint64(it.seq))
		if _, err := w.Write(hdr[:n]); err != nil {
			break
		}
		if _, err := w.Write(s.buf); err != nil {
			break
		}
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write sort run: %w", err)
	}
	clear(s.chunk) // drop the strings
	s.chunk = s.chunk[:0]
	s.used = 0
	return nil
}

// spills returns the number of run files written.
func (s *sorter) spills() int { return len(s.runs) }

// iterator yields events in (occurred_at, sequence) order. The Event it
// fills is valid until the next call.
type iterator interface {
	next(e *operators.Event) (bool, error)
}

// finish returns an iterator over everything added.
func (s *sorter) finish() (iterator, error) {
	sortChunk(s.chunk)
	if len(s.runs) == 0 {
		return &memIter{items: s.chunk}, nil
	}
	m := &mergeIter{dec: operators.NewDecoder(nil)}
	m.dec.MaxBytes = 1 << 30 // already validated; canonical JSON may be longer
	if len(s.chunk) > 0 {
		m.srcs = append(m.srcs, &memSource{items: s.chunk})
	}
	for _, name := range s.runs {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("open sort run: %w", err)
		}
		s.files = append(s.files, f)
		m.srcs = append(m.srcs, &fileSource{r: bufio.NewReaderSize(f, 64<<10), dec: m.dec, name: name})
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
	s.chunk = nil
	return errors.Join(errs...)
}

type memIter struct {
	items []item
	i     int
}

func (m *memIter) next(e *operators.Event) (bool, error) {
	if m.i >= len(m.items) {
		return false, nil
	}
	*e = m.items[m.i].ev
	m.items[m.i] = item{} // let the strings go once applied
	m.i++
	return true, nil
}

// source is one sorted run being merged.
type source interface {
	// advance moves to the next item; false at the end.
	advance() (bool, error)
	cur() *item
}

type memSource struct {
	items []item
	i     int
}

func (m *memSource) advance() (bool, error) {
	if m.i > 0 {
		m.items[m.i-1] = item{}
	}
	if m.i >= len(m.items) {
		return false, nil
	}
	m.i++
	return true, nil
}

func (m *memSource) cur() *item { return &m.items[m.i-1] }

type fileSource struct {
	r    *bufio.Reader
	dec  *operators.Decoder
	name string
	it   item
	buf  []byte
}

func (f *fileSource) advance() (bool, error) {
	n, err := binary.ReadUvarint(f.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read sort run %s: %w", filepath.Base(f.name), err)
	}
	t, err := binary.ReadVarint(f.r)
	if err != nil {
		return false, fmt.Errorf("read sort run %s: %w", filepath.Base(f.name), noEOF(err))
	}
	seq, err := binary.ReadUvarint(f.r)
	if err != nil {
		return false, fmt.Errorf("read sort run %s: %w", filepath.Base(f.name), noEOF(err))
	}
	if n > 1<<30 {
		return false, fmt.Errorf("read sort run %s: corrupt length %d", filepath.Base(f.name), n)
	}
	f.buf = slices.Grow(f.buf[:0], int(n))[:n]
	if _, err := io.ReadFull(f.r, f.buf); err != nil {
		return false, fmt.Errorf("read sort run %s: %w", filepath.Base(f.name), noEOF(err))
	}
	if err := f.dec.Decode(f.buf, &f.it.ev); err != nil {
		// The event decoded once; failing now means Event.AppendJSON does
		// not round-trip.
		return false, fmt.Errorf("decode spilled event %q: %w", f.buf, err)
	}
	if f.it.ev.OccurredAt != t {
		return false, fmt.Errorf("decode spilled event %q: occurred_at %d, want %d", f.buf, f.it.ev.OccurredAt, t)
	}
	f.it.seq = int64(seq)
	return true, nil
}

func (f *fileSource) cur() *item { return &f.it }

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// mergeIter is a k-way merge of sorted sources on (occurred_at, sequence).
type mergeIter struct {
	srcs []source
	h    srcHeap
	dec  *operators.Decoder
	// started: the top source's item was handed out and must advance
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
	*e = m.h[0].cur().ev
	return true, nil
}

type srcHeap []source

func (h srcHeap) Len() int { return len(h) }
func (h srcHeap) Less(i, j int) bool {
	a, b := h[i].cur(), h[j].cur()
	if a.ev.OccurredAt != b.ev.OccurredAt {
		return a.ev.OccurredAt < b.ev.OccurredAt
	}
	return a.seq < b.seq
}
func (h srcHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *srcHeap) Push(x any)   { *h = append(*h, x.(source)) }
func (h *srcHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}
