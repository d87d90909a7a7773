package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// Store is the durable state of any number of partitions in one Badger
// database, with an in-memory cache of member states in front of it.
//
// Concurrency: a Store is safe for concurrent use. Writes to one partition
// (Batch.Commit, Ack, DropPartition) must come from one goroutine at a time,
// the partition's worker; different partitions are written concurrently.
// Reads (Get, Offsets, Due, Outbox, Range, Stats) may run at any time from
// any goroutine and see committed data only.
//
// Close waits for the calls in progress; calls made after (or during) Close
// return ErrClosed.
type Store struct {
	opts  Options
	db    *badger.DB
	log   zerolog.Logger
	split memorySplit
	cache *memberCache

	mu    sync.Mutex // guards parts
	parts map[Partition]*partState

	life     sync.Mutex // guards closed, inflight
	idle     *sync.Cond
	closed   bool
	inflight int

	closeOnce sync.Once
	closeErr  error
	gcStop    chan struct{}
	gcDone    chan struct{}
	trimDone  chan struct{}

	// disk-space guard, see checkDisk.
	reserve   int64
	lastCheck atomic.Int64 // unix nanos of the last statfs
	diskFull  atomic.Bool

	// Test knobs.
	now       func() time.Time       // clock for dedup expiry
	txnBytes  int64                  // transaction size limit (estimated as Badger does)
	txnCount  int64                  // transaction entry limit
	afterPart func(part int) error   // called after each committed part but the last
	statfs    func(dir string) int64 // free bytes, -1 if unknown
	noFilter  bool                   // Seen always reads Badger (benchmarks)
	buildHook func()                 // called by a dedup filter build after its snapshot
}

// partState is what the store keeps per partition in memory.
type partState struct {
	nextSeq atomic.Uint64 // next outbox sequence number to hand out
	// dueMark is the largest `before` a Due scan of the partition was
	// called with in this process (math.MinInt64 before the first): a
	// timer entry earlier than it may have been reported. See Batch.
	dueMark atomic.Int64
	// dueFloor is a time no timer entry of the partition is earlier than
	// (math.MinInt64: none known), where a Due scan starts instead of at
	// the first key: the entries a scan reported are moved by the
	// caller's next commit, and Badger's iterator steps over every such
	// deletion marker until compaction drops it. A scan raises it to its
	// first report (or its bound, when it reported none); a commit lowers
	// it to each entry it inserts, after the insert is visible, so that a
	// scan which read the floor before raises nothing past that entry
	// (its compare-and-swap fails) and a scan which reads it after sees
	// the entry.
	dueFloor atomic.Int64
	seen     seenFilter  // answers most dedup checks without Badger
	outbox   outboxIndex // pending records of packed outbox entries
	buffers  sync.Pool   // *batchBuffers of committed batches, for the next
	hint     batchHint   // the last batch's sizes, for the next
	handle   PartitionStore
}

// Open opens (creating if needed) the store in opts.Dir. It validates opts,
// then opens Badger with the options derived from opts.MemoryBudget and
// starts value-log GC. Errors wrap ErrLocked, ErrNotWritable or ErrDiskFull
// (see each) with the cause and the directory; Open never panics on a bad
// directory (a panic inside Badger's Open is returned as an error).
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, classify(fmt.Errorf("create state directory %s: %w", opts.Dir, err))
	}
	if err := probeWritable(opts.Dir); err != nil {
		return nil, classify(fmt.Errorf("write state directory %s: %w", opts.Dir, err))
	}
	if err := removeEmptyValueLogs(opts.Dir, opts.Logger); err != nil {
		return nil, classify(fmt.Errorf("open state in %s: %w", opts.Dir, err))
	}
	bo, split := opts.badgerOptions()
	// Badger replays a write-ahead file left by a crash into a memtable
	// arena of the *current* size, and exits the process (not an error, not
	// a panic) when it does not fit. A file is 2 × the MemTableSize it was
	// written with, so never open with a smaller one than the largest left.
	if need := memTableNeeded(opts.Dir); need > bo.MemTableSize {
		s := split
		s.MemberCache = max(s.MemberCache-2*(need-split.MemTable), mib)
		s.MemTable = need
		bo, split = bo.WithMemTableSize(need), s
	}
	s := &Store{
		opts:     opts,
		log:      opts.Logger,
		split:    split,
		cache:    newMemberCache(split.MemberCache),
		parts:    make(map[Partition]*partState),
		gcStop:   make(chan struct{}),
		gcDone:   make(chan struct{}),
		trimDone: make(chan struct{}),
		now:      time.Now,
		statfs:   freeBytes,
		reserve:  2*split.Memtables + 16*mib,
	}
	s.idle = sync.NewCond(&s.life)
	// Badger writes its logs through memory maps: on a full disk that is
	// a SIGBUS, not an error. Refuse to open without room for the
	// memtables' logs and a flush.
	if free := s.statfs(opts.Dir); free >= 0 && free < s.reserve {
		return nil, fmt.Errorf("%w: open state in %s: %d bytes free, %d needed: %w", ErrDiskFull, opts.Dir, free, s.reserve, syscall.ENOSPC)
	}
	db, err := openBadger(bo)
	if err != nil {
		return nil, classify(fmt.Errorf("open badger in %s: %w", opts.Dir, err))
	}
	s.db = db
	if err := s.loadSeqs(); err != nil {
		return nil, errors.Join(classify(fmt.Errorf("load outbox sequences in %s: %w", opts.Dir, err)), db.Close())
	}
	go s.runGC(opts.GCInterval)
	go s.runTrim(tableTrimInterval)
	s.log.Debug().Str("dir", opts.Dir).Int64("memtable_bytes", split.MemTable).
		Int64("index_cache_bytes", split.IndexCache).
		Int64("member_cache_bytes", split.MemberCache).Msg("state store open")
	return s, nil
}

// removeEmptyValueLogs deletes zero-length value-log files. A crash between
// creating a value-log file and writing its header (value-log GC and
// rotation create files) leaves one, and Badger v4.9.6 then refuses to open
// the directory ("Open existing file: ... Create a new file": it bootstraps
// the file but returns the "new file" sentinel as an error). A file with no
// bytes holds no entry, so nothing points into it.
func removeEmptyValueLogs(dir string, log zerolog.Logger) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Size() == 0 {
			log.Warn().Str("file", f).Msg("removing an empty value-log file left by a crash")
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// memTableNeeded returns the MemTableSize the write-ahead (.mem) files in
// dir were written with: half the largest file's size; 0 if there are none.
func memTableNeeded(dir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	var largest int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Size() > largest {
			largest = st.Size()
		}
	}
	return largest / 2
}

// openBadger opens Badger, turning a panic into an error.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("badger panicked: %v", r)
		}
	}()
	return badger.Open(bo)
}

// probeWritable creates and removes a file in dir.
func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, err = f.Write([]byte{0})
	return errors.Join(err, f.Close(), os.Remove(name))
}

// classify wraps err with the sentinel its cause calls for, if any.
func classify(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case errors.Is(err, ErrLocked), errors.Is(err, ErrNotWritable), errors.Is(err, ErrDiskFull), errors.Is(err, ErrClosed):
		return err
	case errors.Is(err, syscall.ENOSPC), strings.Contains(msg, "no space left on device"):
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	case strings.Contains(msg, "Cannot acquire directory lock"):
		return fmt.Errorf("%w: %w", ErrLocked, err)
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM),
		errors.Is(err, syscall.ENOTDIR), errors.Is(err, fs.ErrExist), errors.Is(err, fs.ErrPermission),
		strings.Contains(msg, "read-only file system"), strings.Contains(msg, "not a directory"):
		return fmt.Errorf("%w: %w", ErrNotWritable, err)
	case errors.Is(err, badger.ErrDBClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// enter registers a call in progress; false if the store is closed.
func (s *Store) enter() bool {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return false
	}
	s.inflight++
	return true
}

// isClosed reports whether Close has started: long reads (a dedup filter's
// build) stop early, so that Close does not wait for them to finish.
func (s *Store) isClosed() bool {
	s.life.Lock()
	defer s.life.Unlock()
	return s.closed
}

func (s *Store) leave() {
	s.life.Lock()
	s.inflight--
	if s.inflight == 0 && s.closed {
		s.idle.Broadcast()
	}
	s.life.Unlock()
}

// Close stops value-log GC, waits for the calls in progress and closes
// Badger (which flushes its memtables). It is idempotent: later calls
// return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.life.Lock()
		s.closed = true
		for s.inflight > 0 {
			s.idle.Wait()
		}
		s.life.Unlock()
		close(s.gcStop)
		<-s.gcDone
		<-s.trimDone
		if err := s.db.Close(); err != nil {
			s.closeErr = classify(fmt.Errorf("close badger in %s: %w", s.opts.Dir, err))
		}
		s.cache.close()
	})
	return s.closeErr
}

// runGC runs value-log GC every interval until Close.
func (s *Store) runGC(interval time.Duration) {
	defer close(s.gcDone)
	if interval <= 0 {
		<-s.gcStop
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
		}
		n := 0
		for {
			select {
			case <-s.gcStop:
				return
			default:
			}
			if err := s.db.RunValueLogGC(0.5); err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) {
					s.log.Debug().Err(err).Msg("value log gc")
				}
				break
			}
			n++
		}
		if n > 0 {
			s.log.Debug().Int("files", n).Msg("value log gc rewrote files")
		}
	}
}

// tableTrimInterval is how often runTrim looks at the process's resident
// file pages.
const tableTrimInterval = 250 * time.Millisecond

// trimFileRSSAbove is the process's resident file-backed memory (RssFile:
// the executable's pages too, up to its size: 28 MiB) above which runTrim
// releases the pages of the tables' and the value log's memory maps.
const trimFileRSSAbove = 64 * mib

// runTrim calls trimTables when the process's resident file pages exceed
// trimFileRSSAbove, looking every interval, until Close: the pages of the
// tables' memory maps are not part of the memory budget (see trimTables).
//
// It used to trim every interval. That evicted the tables' pages from the
// page cache every 250 ms, and the next member-cache miss on a block read
// it back: at 1,000,000 members the latency phase's process waited more
// than it worked (benchmarks/RESULTS.md, sixth sitting). Trimming only
// above a bound keeps the hot blocks resident between trims and still
// bounds what the maps add to RSS.
func (s *Store) runTrim(interval time.Duration) {
	defer close(s.trimDone)
	dir := tableDir(s.opts.Dir)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
			if rss := fileRSS(); rss < 0 || rss >= trimFileRSSAbove {
				start := time.Now()
				n := s.trim(dir)
				s.log.Debug().Int64("file_rss_before", rss).Int64("file_rss_after", fileRSS()).Int("maps", n).
					Dur("took", time.Since(start)).Msg("released the pages of the tables' memory maps")
			}
		}
	}
}

// trim releases the resident pages of the store's memory maps in dir (see
// trimTables) and returns how many maps it advised. A Badger iterator holds
// a reference to every table of the LSM tree while it is open, so a table
// listed both before and after one is opened stays mapped until it is
// closed: those tables' pages may be unmapped and left in the page cache.
func (s *Store) trim(dir string) int {
	before := tableIDs(s.db.Tables())
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	after := tableIDs(s.db.Tables())
	return trimTables(dir, func(id uint64) bool { return before[id] && after[id] })
}

// tableIDs returns the set of the tables' ids.
func tableIDs(tables []badger.TableInfo) map[uint64]bool {
	ids := make(map[uint64]bool, len(tables))
	for _, t := range tables {
		ids[t.ID] = true
	}
	return ids
}

// checkDisk returns ErrDiskFull when the free space of the state directory
// falls below the reserve (two memtables' logs and a flush). It calls
// statfs at most once per second.
func (s *Store) checkDisk() error {
	now := time.Now().UnixNano()
	last := s.lastCheck.Load()
	if now-last >= int64(time.Second) && s.lastCheck.CompareAndSwap(last, now) {
		free := s.statfs(s.opts.Dir)
		s.diskFull.Store(free >= 0 && free < s.reserve)
	}
	if s.diskFull.Load() {
		return fmt.Errorf("%w: write to %s: free space below the %d-byte reserve: %w", ErrDiskFull, s.opts.Dir, s.reserve, syscall.ENOSPC)
	}
	return nil
}

// loadSeqs reads every partition's next outbox sequence number.
func (s *Store) loadSeqs() error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kindSeq, '/'}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			p, ok := parsePartition(it.Item().Key())
			if !ok {
				continue
			}
			err := it.Item().Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("outbox sequence of partition %d: %d bytes", p, len(v))
				}
				s.part(p).nextSeq.Store(binary.BigEndian.Uint64(v))
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// filterBuilds returns the number of partitions whose dedup filter is
// being built.
func (s *Store) filterBuilds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.parts {
		if st.seen.isBuilding() {
			n++
		}
	}
	return n
}

// part returns p's in-memory state, creating it.
func (s *Store) part(p Partition) *partState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.parts[p]
	if !ok {
		st = &partState{}
		st.nextSeq.Store(1)
		st.dueMark.Store(math.MinInt64)
		st.dueFloor.Store(math.MinInt64)
		st.handle = PartitionStore{s: s, p: p, st: st}
		s.parts[p] = st
	}
	return st
}

// Partition returns the handle of partition p. It is cheap (a map lookup)
// and always succeeds; the handle's methods return ErrClosed once the store
// is closed. At most one goroutine may write a partition at a time.
func (s *Store) Partition(p Partition) *PartitionStore { return &s.part(p).handle }

// Partitions returns, in ascending order, the partitions that have any key
// on disk. It seeks once per partition and key kind, not per key.
func (s *Store) Partitions() ([]Partition, error) {
	if !s.enter() {
		return nil, ErrClosed
	}
	defer s.leave()
	seen := map[Partition]bool{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for _, k := range kinds {
			kp := []byte{k, '/'}
			for it.Seek(kp); it.ValidForPrefix(kp); {
				key := it.Item().Key()
				p, ok := parsePartition(key)
				if !ok { // not ours: skip the key
					it.Next()
					continue
				}
				seen[p] = true
				it.Seek(afterPrefix(appendPrefix(nil, k, p)))
			}
		}
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("list partitions: %w", err))
	}
	out := make([]Partition, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// Stats counts what the store holds. It scans every key (not values), so
// it costs time in proportion to the keys on disk: for inspection and
// metrics at a slow rate, not for the hot path.
func (s *Store) Stats() (Stats, error) {
	if !s.enter() {
		return Stats{}, ErrClosed
	}
	defer s.leave()
	var st Stats
	seen := map[Partition]bool{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			p, ok := parsePartition(key)
			if !ok {
				continue
			}
			seen[p] = true
			switch key[0] {
			case kindMember:
				st.Members++
			case kindTimer:
				st.Timers++
			case kindOutbox:
				err := it.Item().Value(func(v []byte) error {
					st.OutboxDepth += packedCount(v)
					return nil
				})
				if err != nil {
					return err
				}
			case kindDedup:
				st.DedupMarkers++
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, classify(fmt.Errorf("scan keys: %w", err))
	}
	for p := range seen {
		st.Partitions = append(st.Partitions, p)
	}
	slices.Sort(st.Partitions)
	st.CachedStates, st.CachedBytes = s.cache.stats()
	st.DiskBytes, st.ValueLogBytes, err = dirBytes(s.opts.Dir)
	if err != nil {
		return st, fmt.Errorf("measure %s: %w", s.opts.Dir, err)
	}
	return st, nil
}

// dirBytes sums the disk blocks of Badger's table and log files, and of
// the value log's files alone.
func dirBytes(dir string) (total, vlog int64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		switch ext {
		case ".sst", ".vlog", ".mem":
		default:
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile (compaction)
		}
		n := diskUsage(fi)
		total += n
		if ext == ".vlog" {
			vlog += n
		}
	}
	return total, vlog, nil
}

// DropPartition deletes every key of partition p (states, timers, offsets,
// outbox, dedup markers and its outbox sequence) and its cached states. It
// deletes in transactions of Badger's size while reading, so other
// partitions keep writing meanwhile; it stops early, with ctx's error, when
// ctx ends, leaving the rest for another call. The partition's worker must
// not write it at the same time.
func (s *Store) DropPartition(ctx context.Context, p Partition) error {
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	s.cache.dropPartition(p)
	s.part(p).seen.reset()
	s.part(p).outbox.reset()
	s.part(p).dueFloor.Store(math.MinInt64)
	for _, k := range kinds {
		prefix := appendPrefix(nil, k, p)
		for {
			keys, err := s.collectKeys(prefix, int(s.maxCount()/2))
			if err != nil {
				return classify(fmt.Errorf("drop partition %d: %w", p, err))
			}
			if len(keys) == 0 {
				break
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("drop partition %d: %w", p, err)
			}
			if err := s.deleteKeys(nil, keys); err != nil {
				return classify(fmt.Errorf("drop partition %d: %w", p, err))
			}
		}
	}
	s.cache.dropPartition(p) // states a concurrent Get cached meanwhile
	return nil
}

// collectKeys returns up to n keys that start with prefix.
func (s *Store) collectKeys(prefix []byte, n int) ([][]byte, error) {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(keys) < n; it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	return keys, err
}

// kv is a key and its value.
type kv struct{ key, value []byte }

// deleteKeys deletes keys in as many transactions as Badger's limits need,
// setting first (if not nil) in the first of them. It is not atomic across
// transactions: used for acknowledgements and drops, which are idempotent.
func (s *Store) deleteKeys(first *kv, keys [][]byte) error {
	for first != nil || len(keys) > 0 {
		txn := s.db.NewTransaction(true)
		set := first != nil
		if set {
			if err := txn.Set(first.key, first.value); err != nil {
				txn.Discard()
				return err
			}
			first = nil
		}
		n := 0
		for ; n < len(keys); n++ {
			if err := txn.Delete(keys[n]); err != nil {
				if errors.Is(err, badger.ErrTxnTooBig) && (n > 0 || set) {
					break
				}
				txn.Discard()
				return err
			}
		}
		if err := txn.Commit(); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// maxBytes and maxCount are the transaction limits a Batch packs to: a
// margin under Badger's, or the test knobs.
func (s *Store) maxBytes() int64 {
	if s.txnBytes > 0 {
		return s.txnBytes
	}
	return s.db.MaxBatchSize() * 9 / 10
}

func (s *Store) maxCount() int64 {
	if s.txnCount > 0 {
		return s.txnCount
	}
	return s.db.MaxBatchCount() * 9 / 10
}

// badgerLogger adapts zerolog to Badger's Logger. Badger's info messages
// (table and compaction housekeeping) go to debug, its debug to trace. The
// lines say where they come from in their message ("badger"), not in a
// field: the store's logger already names its component, and a second
// "component" key made the JSON line hold the key twice.
type badgerLogger struct{ l zerolog.Logger }

func (b badgerLogger) Errorf(f string, v ...any) { b.emit(b.l.Error(), f, v) }
func (b badgerLogger) Warningf(f string, v ...any) {
	b.emit(b.l.Warn(), f, v)
}
func (b badgerLogger) Infof(f string, v ...any)  { b.emit(b.l.Debug(), f, v) }
func (b badgerLogger) Debugf(f string, v ...any) { b.emit(b.l.Trace(), f, v) }

func (badgerLogger) emit(e *zerolog.Event, f string, v []any) {
	if e == nil {
		return
	}
	e.Str("detail", strings.TrimSpace(fmt.Sprintf(f, v...))).Msg("badger")
}

// DedupTTL is how long the store remembers an event id (Options.DedupTTL).
func (s *Store) DedupTTL() time.Duration { return s.opts.DedupTTL }

// Usage is what the store holds that can be measured without scanning keys.
type Usage struct {
	DiskBytes    int64 // LSM tree and value log on disk (allocated blocks)
	CachedStates int64 // member states held in memory
	CachedBytes  int64 // bytes charged to the member cache
	// CacheHits and CacheMisses count the member reads (PartitionStore.Get)
	// since the store opened that the member cache answered, and those it
	// did not hold, which read Badger (found there or not: a new member is
	// a miss too).
	CacheHits, CacheMisses int64
	// FilterBuilds counts the partitions whose dedup filter is being
	// built (in the background: their dedup checks read Badger meanwhile).
	FilterBuilds int
}

// Usage measures the store cheaply (a directory listing), for metrics
// scraped often; Stats counts keys too, at the cost of a full scan.
func (s *Store) Usage() (Usage, error) {
	if !s.enter() {
		return Usage{}, ErrClosed
	}
	defer s.leave()
	var u Usage
	u.CachedStates, u.CachedBytes = s.cache.stats()
	u.CacheHits, u.CacheMisses = s.cache.lookups()
	u.FilterBuilds = s.filterBuilds()
	var err error
	if u.DiskBytes, _, err = dirBytes(s.opts.Dir); err != nil {
		return u, fmt.Errorf("measure %s: %w", s.opts.Dir, err)
	}
	return u, nil
}
