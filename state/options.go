package state

import (
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20

	// minMemoryBudget is the smallest budget Validate accepts: two 4 MiB
	// memtables, the caches and a member cache of a few MiB.
	minMemoryBudget = 16 * mib
)

// DefaultOptions returns the options for a store in dir: a 256 MiB memory
// budget, no fsync per commit, value-log GC every 5 minutes, a 7-day dedup
// horizon and no logging.
func DefaultOptions(dir string) Options {
	return Options{
		Dir:          dir,
		MemoryBudget: 256 * mib,
		GCInterval:   5 * time.Minute,
		DedupTTL:     7 * 24 * time.Hour,
	}
}

// Validate reports the first invalid field, by name.
func (o *Options) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("state: Options.Dir is empty")
	case o.MemoryBudget < minMemoryBudget:
		return fmt.Errorf("state: Options.MemoryBudget %d is below the minimum of %d bytes (16 MiB)", o.MemoryBudget, minMemoryBudget)
	case o.GCInterval < 0:
		return fmt.Errorf("state: Options.GCInterval %v is negative", o.GCInterval)
	case o.DedupTTL < time.Second:
		return fmt.Errorf("state: Options.DedupTTL %v is below Badger's TTL granularity of 1s", o.DedupTTL)
	}
	return nil
}

// memorySplit is how a MemoryBudget is shared out. For the default 256 MiB:
// memtables 2 × 16 MiB (about 42 MiB with Badger's arena slack), index
// cache 16 MiB, Badger working memory 48 MiB (1 MiB tables), member cache
// about 150 MiB, and no block cache.
//
// Why this split:
//   - The member cache gets the rest, the largest share (about 58 %): a
//     member held in memory costs a decode (about 1 µs); one that is not
//     costs a Badger read (17–28 µs measured). The working set of member
//     states is what the budget is for.
//   - Memtables: budget/16 each, between 4 and 64 MiB, two of them (one
//     being written, one being flushed). Badger allocates an arena of
//     MemTableSize plus the transaction limit (15 % of it, twice over) per
//     memtable, about 1.3 × MemTableSize, so two cost about 2.6/16 = 16 %.
//     The transaction limit is 15 % of MemTableSize (2.4 MiB at 16 MiB),
//     enough for batches of several thousand members in one transaction.
//   - No block cache: tables are not compressed, so a block is read in
//     place from the table's memory map, with no copy and nothing to
//     cache. With Snappy, every read of a block (the member cache's
//     misses, compactions) decompressed it into a fresh buffer, and the
//     block cache (budget/16) held few of them, misses being random keys.
//     Measured at 1,000,000 members, back to back on the same data
//     (benchmarks/RESULTS.md, sixth sitting): 13,350 → 16,774 events/s,
//     134.7 → 98.0 CPU s per million events; the LSM tree takes 222
//     instead of 126 bytes per member on disk. The block cache's share
//     went to Badger's working memory, which its table builders overrun
//     anyway.
//   - Index cache, budget/16 (6.25 %): table indexes and bloom filters. Not
//     zero, because Badger's zero keeps every index in RAM, unbounded. Bloom
//     filters take about 1.2 bytes per key at 1 % false positives, so 16 MiB
//     holds the filters of several million keys; they make the lookups of
//     absent keys (dedup markers, new members) cheap.
//   - Badger working memory, budget/8 + budget/16 (18.75 %): table builders of flushes
//     and compactions, iterators, pending write requests. Not configurable
//     in Badger; reserved so the member cache does not take it. It was
//     budget/16 with Badger's table sizes, and measured far over: a heap
//     profile at 1 M members held 124 MiB of compaction table builders.
//     Each builder allocates 2 × its table size, a compaction keeps up to
//     8 + 5 of them in flight, and two compactors run; with Badger's
//     defaults (2 MiB base tables, doubling on every level below the base)
//     a table on the last level is up to 64 MiB. So the tables are made
//     small and the same size on every level (TableSize = budget/256,
//     1-4 MiB, TableSizeMultiplier 1): about 2-8 MiB per builder. Smaller
//     tables mean more of them (a few hundred for 1 M members), which the
//     index cache bounds. Measured (benchmarks/RESULTS.md): Go heap in use
//     at the end of the 1 M-member run 305 → 186 MiB at a 128 MiB budget,
//     loading and updates faster, not slower.
//   - Not in the budget: the pages of the tables' memory maps. Badger
//     writes every table through a memory map and keeps it mapped, so the
//     whole LSM tree (about 220 MiB for 1 M members) would stay in RSS;
//     the store releases those pages whenever the process's resident
//     file pages exceed 64 MiB, looking every 250 ms (trimTables).
type memorySplit struct {
	MemTable    int64 // Badger MemTableSize (NumMemtables = 2)
	Memtables   int64 // what the two memtables cost, arena slack included
	IndexCache  int64
	BadgerOther int64
	MemberCache int64
	TableSize   int64 // Badger BaseTableSize (TableSizeMultiplier = 1)
}

func splitMemory(budget int64) memorySplit {
	var s memorySplit
	s.MemTable = min(max(budget/16, 4*mib), 64*mib)
	s.MemTable = s.MemTable / mib * mib
	s.Memtables = 2 * (s.MemTable + 2*s.MemTable*15/100)
	s.IndexCache = budget / 16
	s.BadgerOther = budget/8 + budget/16
	s.TableSize = min(max(budget/256, mib), 4*mib) / mib * mib
	s.MemberCache = max(budget-s.Memtables-s.IndexCache-s.BadgerOther, mib)
	return s
}

// RecommendedMemoryLimit returns the GOMEMLIMIT a process should set for a
// store with this MemoryBudget: the budget, plus 64 MiB for the rest of the
// process (Kafka client buffers, records in flight, decoding, operators),
// plus a quarter of the budget as headroom for the garbage collector.
//
// Why: Badger's memtables and caches are Go allocations, so with the
// default GOGC=100 the heap would grow to twice their live size before a
// collection. GOMEMLIMIT makes the collector run as the heap nears the
// limit instead; a quarter of the budget as room for garbage keeps
// collections from running back to back (measured here: a limit barely
// above the live heap halved throughput).
//
// The member cache is off the Go heap (fastcache's memory-mapped chunks),
// which the limit does not count, yet the limit still includes its share:
// the heap needs the room. Badger's table builders hold far more than
// their budget/8 (a heap profile at 200,000 members: about 100 MiB), and
// taking the member cache's share out of the limit made collections run
// back to back (churnflow bench at 200,000 members: 20,000 → 15,000
// events/s). So RSS can exceed the limit by the member cache (up to its
// share of the budget, or fastcache's minimum of 32 MiB for budgets under
// about 64 MiB) and by the resident pages of memory-mapped files: the
// memtables' write-ahead logs, and the tables' pages (the store releases
// them whenever the process's resident file pages exceed 64 MiB).
func RecommendedMemoryLimit(budget int64) int64 {
	return budget + budget/4 + 64*mib
}

// badgerOptions translates o into Badger's options.
func (o *Options) badgerOptions() (badger.Options, memorySplit) {
	split := splitMemory(o.MemoryBudget)
	bo := badger.DefaultOptions(o.Dir).
		WithLogger(badgerLogger{o.Logger}).
		WithSyncWrites(o.SyncWrites).
		WithDetectConflicts(false).
		WithCompression(options.None).
		WithMemTableSize(split.MemTable).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		// Compaction memory (see memorySplit): Badger's minimum of two
		// compactors (one is not allowed; zero disables compaction), and
		// small tables of the same size on every level, so that each of
		// the up to 13 table builders a compaction keeps in flight holds
		// about 2 × TableSize instead of up to 2 × 64 MiB on the deepest
		// level with Badger's default multiplier of 2.
		WithNumCompactors(2).
		WithBaseTableSize(split.TableSize).
		WithBlockCacheSize(0).
		WithIndexCacheSize(split.IndexCache).
		// Values under 64 KiB (every member state) live in the LSM tree,
		// so a read is one lookup; larger ones (big dead letters) go to the
		// value log, which the GC reclaims once they are acknowledged.
		WithValueThreshold(valueThreshold).
		WithValueLogFileSize(256 * mib).
		WithMetricsEnabled(false)
	bo.TableSizeMultiplier = 1 // no With method in Badger v4
	return bo, split
}

// BadgerOptions returns the Badger options a Store opened with o uses (the
// memory split of o.MemoryBudget, compression, table sizes, caches). It is
// for benchmarks that measure what a bare Badger costs under the same
// settings (churnflow bench's floor), not for opening a Store's directory
// behind its back.
func (o Options) BadgerOptions() badger.Options {
	bo, _ := o.badgerOptions()
	return bo
}
