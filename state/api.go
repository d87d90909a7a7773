package state

// This file is the package's contract: the types and methods the pipeline,
// replay and the tests use. Implementations live in the other files.

import (
	"errors"
	"time"

	"github.com/rs/zerolog"
)

// Errors from Open and from writes. Each is returned wrapped with the
// underlying cause and the state directory, so test them with errors.Is.
var (
	// ErrLocked means another process (or another Store in this process)
	// holds the state directory's lock.
	ErrLocked = errors.New("state: directory is locked by another process")
	// ErrNotWritable means the state directory cannot be created or written:
	// the path is a regular file, the file system is read-only, or
	// permissions forbid it.
	ErrNotWritable = errors.New("state: directory is not writable")
	// ErrDiskFull means the disk holding the state directory is full, or has
	// less free space than the store keeps in reserve (Badger writes its
	// logs through memory maps, where a full disk would crash the process
	// instead of returning an error, so the store refuses to write first).
	ErrDiskFull = errors.New("state: disk is full")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("state: store is closed")
	// ErrBatchTooBig means one member group of a batch (a member's state,
	// timer, dedup markers and outbox records) alone exceeds Badger's
	// transaction limit, so it cannot be committed atomically. Commit
	// smaller batches or raise Options.MemoryBudget.
	ErrBatchTooBig = errors.New("state: member group exceeds the transaction limit")
	// ErrBatchDone means a Batch was used after Commit or Discard.
	ErrBatchDone = errors.New("state: batch already committed or discarded")
)

// Options configure a Store. Start from DefaultOptions; Validate names the
// bad field. The zero value is not valid (Dir and MemoryBudget are needed).
type Options struct {
	// Dir is the state directory (created if missing).
	Dir string
	// MemoryBudget is the one number that bounds the store's memory: it is
	// split between Badger's memtables, index cache and working memory and the
	// in-memory member-state cache (see MemorySplit and
	// docs/architecture.md). Default 256 MiB; at least 16 MiB.
	MemoryBudget int64
	// SyncWrites makes every commit wait for fsync: survives power loss, not
	// only process crashes. Default false (Kafka replays from the offsets
	// committed with the state, so a process crash loses nothing).
	SyncWrites bool
	// GCInterval is how often the value log is garbage-collected. Default 5m;
	// 0 disables it.
	GCInterval time.Duration
	// DedupTTL is how long an event_id is remembered for duplicate detection.
	// Default 7 days. Badger's TTLs have a granularity of one second, so it
	// must be at least 1s.
	DedupTTL time.Duration
	// Logger receives Badger's and the store's logs (Badger's info messages
	// at debug level). The zero value discards them.
	Logger zerolog.Logger
}

// Partition identifies one input partition's share of the state.
type Partition int32

// OutboxRecord is one record waiting to be produced: an alert, a segment
// change or a dead letter.
type OutboxRecord struct {
	Topic   string            // output topic
	Key     []byte            // Kafka message key (the member id)
	Value   []byte            // message value
	Headers map[string]string // Kafka headers (alert_id, dead-letter reason, ...)
}

// Stats describes what a store holds.
type Stats struct {
	Partitions   []Partition
	Members      int64 // member states on disk (tombstones included)
	Timers       int64 // pending timers
	OutboxDepth  int64 // records not yet acknowledged
	DedupMarkers int64 // unexpired dedup markers
	CachedStates int64 // member states held in memory
	CachedBytes  int64 // bytes charged to the member cache (keys, values, overhead)
	DiskBytes    int64 // LSM tree and value log on disk (allocated blocks)
	// ValueLogBytes is the value log's part of DiskBytes: large outbox
	// entries, most of them acknowledged and waiting for value-log GC.
	ValueLogBytes int64
}
