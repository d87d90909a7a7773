package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/churnflow/churnflow/operators"
)

func commit(t *testing.T, b *Batch) {
	t.Helper()
	if err := b.Commit(t.Context()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func TestPutGet(t *testing.T) {
	tests := []struct {
		name  string
		read  func(t *testing.T, s *Store, dir string) *Store // returns the store to read from
		cache bool                                            // expect the states to come from memory
	}{
		{"through the cache", func(t *testing.T, s *Store, _ string) *Store { return s }, true},
		{"after eviction", func(t *testing.T, s *Store, _ string) *Store {
			s.cache.fc.Reset() // evict everything
			return s
		}, false},
		{"after reopen", func(t *testing.T, s *Store, dir string) *Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return openTest(t, dir)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			ps := s.Partition(1)
			b := ps.NewBatch()
			const n = 200
			putMembers(b, 0, n)
			// Not visible before Commit.
			var got operators.MemberState
			if ok, err := ps.Get(mid(0), &got); ok || err != nil {
				t.Fatalf("Get before commit = %v, %v", ok, err)
			}
			commit(t, b)
			s = tt.read(t, s, dir)
			if n, _ := s.cache.stats(); (n == 200) != tt.cache {
				t.Errorf("cached states = %d, expected all cached: %v", n, tt.cache)
			}
			ps = s.Partition(1)
			for i := range n {
				ok, err := ps.Get(mid(i), &got)
				if !ok || err != nil {
					t.Fatalf("Get(%s) = %v, %v", mid(i), ok, err)
				}
				want := testState(i, 0)
				if encoded(&got) != encoded(&want) {
					t.Fatalf("Get(%s) = %+v, want %+v", mid(i), got, want)
				}
			}
			if ok, err := ps.Get("nobody", &got); ok || err != nil {
				t.Errorf("Get(nobody) = %v, %v", ok, err)
			}
			if ok, _ := s.Partition(2).Get(mid(1), &got); ok {
				t.Error("member visible in another partition")
			}
		})
	}
}

func TestPutUpdateDelete(t *testing.T) {
	s := openTest(t, "")
	ps := s.Partition(0)
	st := testState(1, 0)
	b := ps.NewBatch()
	b.Put("A", &st, 0)
	commit(t, b)
	st.Region = "a much longer region name that needs a new allocation in the cache"
	b = ps.NewBatch()
	b.Put("A", &st, 0)
	commit(t, b)
	var got operators.MemberState
	if ok, _ := ps.Get("A", &got); !ok || got.Region != st.Region {
		t.Fatalf("after update: %v %q", ok, got.Region)
	}
	b = ps.NewBatch()
	b.Delete("A", 0)
	commit(t, b)
	if ok, _ := ps.Get("A", &got); ok {
		t.Fatal("deleted member still there")
	}
}

func TestTimers(t *testing.T) {
	s := openTest(t, "")
	ps := s.Partition(4)
	b := ps.NewBatch()
	dues := map[operators.MemberID]int64{"A": 300, "B": 100, "C": 200, "D": 200, "E": 500}
	for id, due := range dues {
		st := testState(0, due)
		b.Put(id, &st, 0)
	}
	commit(t, b)
	// Reschedule A from 300 to 50 (old entry deleted), delete E, and C
	// twice in one batch (first prevDue counts), later: from 200 to 260.
	// The index is lazy: C's entry stays at 200 (earlier than its Due).
	b = ps.NewBatch()
	st := testState(0, 50)
	b.Put("A", &st, 300)
	b.Delete("E", 500)
	st = testState(0, 250)
	b.Put("C", &st, 200)
	st = testState(0, 260)
	b.Put("C", &st, 250)
	commit(t, b)

	type timer struct {
		id  operators.MemberID
		due int64
	}
	scan := func(before int64, limit int) []timer {
		var out []timer
		err := ps.Due(t.Context(), before, limit, func(id operators.MemberID, due int64) error {
			out = append(out, timer{id, due})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		before int64
		limit  int
		want   []timer
	}{
		{50, 0, nil},
		{200, 0, []timer{{"A", 50}, {"B", 100}}},
		{201, 0, []timer{{"A", 50}, {"B", 100}, {"C", 200}, {"D", 200}}},
		{1000, 2, []timer{{"A", 50}, {"B", 100}}},
		{1000, 0, []timer{{"A", 50}, {"B", 100}, {"C", 200}, {"D", 200}}},
		{1000, -1, []timer{{"A", 50}, {"B", 100}, {"C", 200}, {"D", 200}}},
	}
	for _, tt := range tests {
		if got := scan(tt.before, tt.limit); !slices.Equal(got, tt.want) {
			t.Errorf("Due(before %d, limit %d) = %v, want %v", tt.before, tt.limit, got, tt.want)
		}
	}
	if n := len(keysWithPrefix(t, s, []byte("t/4/"))); n != 4 {
		t.Errorf("%d timer keys, want 4 (old entries deleted)", n)
	}
	// Those scans reported C (entry 200) though its Due is 260: put back
	// unchanged, as Due's callers do, its entry moves to 260, once.
	var c operators.MemberState
	if ok, err := ps.Get("C", &c); err != nil || !ok || c.Due != 260 {
		t.Fatalf("Get(C) = %v, %v, due %d; want true, nil, 260", ok, err, c.Due)
	}
	b = ps.NewBatch()
	b.Put("C", &c, c.Due)
	commit(t, b)
	if got, want := scan(1000, 0), []timer{{"A", 50}, {"B", 100}, {"D", 200}, {"C", 260}}; !slices.Equal(got, want) {
		t.Errorf("after putting C back: Due = %v, want %v", got, want)
	}
	if got := scan(260, 0); slices.Contains(got, timer{"C", 200}) || slices.Contains(got, timer{"C", 260}) {
		t.Errorf("after putting C back: Due(260) = %v, want no C", got)
	}
	// An earlier Due always moves the entry; Due 0 removes it.
	st = testState(0, 150)
	b = ps.NewBatch()
	b.Put("C", &st, 260)
	st2 := testState(0, 0)
	b.Put("D", &st2, 200)
	commit(t, b)
	if got, want := scan(1000, 0), []timer{{"A", 50}, {"B", 100}, {"C", 150}}; !slices.Equal(got, want) {
		t.Errorf("after C earlier and D cleared: Due = %v, want %v", got, want)
	}
	// After a reopen the entries recorded in the member values still
	// decide: a later Due with no scan yet keeps the entry.
	s.Close()
	s = openTest(t, s.opts.Dir)
	ps = s.Partition(4)
	st = testState(0, 900)
	b = ps.NewBatch()
	b.Put("B", &st, 100)
	commit(t, b)
	if got, want := scan(101, 0), []timer{{"A", 50}, {"B", 100}}; !slices.Equal(got, want) {
		t.Errorf("after reopen and B later: Due = %v, want %v", got, want)
	}
	if n := len(keysWithPrefix(t, s, []byte("t/4/"))); n != 3 {
		t.Errorf("%d timer keys, want 3", n)
	}
	stop := errors.New("stop")
	if err := ps.Due(t.Context(), 1000, 0, func(operators.MemberID, int64) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Due with failing fn = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := ps.Due(ctx, 1000, 0, func(operators.MemberID, int64) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Due with cancelled ctx = %v", err)
	}
}

func TestOutbox(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ps := s.Partition(2)
	b := ps.NewBatch()
	var seqs []uint64
	for i := range 5 {
		member := mid(i % 2)
		if i == 4 {
			member = "" // dead letter
		}
		seqs = append(seqs, b.Append(member, OutboxRecord{Topic: "alerts", Key: []byte(member), Value: []byte{byte(i)}, Headers: map[string]string{"n": string(rune('a' + i))}}))
	}
	if !slices.IsSorted(seqs) || seqs[0] != 1 {
		t.Fatalf("seqs %v", seqs)
	}
	read := func(ps *PartitionStore) (got []uint64, vals []byte) {
		err := ps.Outbox(t.Context(), func(seq uint64, rec OutboxRecord) error {
			got = append(got, seq)
			vals = append(vals, rec.Value...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, vals
	}
	if got, _ := read(ps); got != nil {
		t.Fatalf("uncommitted records visible: %v", got)
	}
	commit(t, b)
	got, vals := read(ps)
	if !slices.Equal(got, seqs) || string(vals) != "\x00\x01\x02\x03\x04" {
		t.Fatalf("outbox %v %q, want %v", got, vals, seqs)
	}
	if err := ps.Ack(seqs[1], seqs[3], 999); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(ps); !slices.Equal(got, []uint64{1, 3, 5}) {
		t.Fatalf("after ack: %v", got)
	}
	if err := ps.Ack(seqs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// All acknowledged: the sequence still continues after a reopen.
	s = openTest(t, dir)
	b = s.Partition(2).NewBatch()
	if seq := b.Append("", OutboxRecord{Topic: "dlq"}); seq != 6 {
		t.Errorf("seq after reopen = %d, want 6", seq)
	}
	commit(t, b)
	if seq := s.Partition(2).NewBatch().Append("", OutboxRecord{}); seq != 7 {
		t.Errorf("next seq = %d, want 7", seq)
	}
	if seq := s.Partition(3).NewBatch().Append("", OutboxRecord{}); seq != 1 {
		t.Errorf("other partition's first seq = %d, want 1", seq)
	}
}

// TestAckChangelog: the changelog offset and the outbox's deletes go
// together; with no records the offset is still recorded.
func TestAckChangelog(t *testing.T) {
	s := openTest(t, t.TempDir())
	ps := s.Partition(1)
	b := ps.NewBatch()
	var seqs []uint64
	for i := range 4 {
		seqs = append(seqs, b.Append("m", OutboxRecord{Topic: "t", Value: []byte{byte(i)}}))
	}
	commit(t, b)
	if err := ps.AckChangelog(42, seqs[:3]...); err != nil {
		t.Fatal(err)
	}
	if next, ok, err := ps.ChangelogOffset(); next != 42 || !ok || err != nil {
		t.Errorf("ChangelogOffset = %d, %v, %v; want 42, true", next, ok, err)
	}
	var left []uint64
	err := ps.Outbox(t.Context(), func(seq uint64, _ OutboxRecord) error {
		left = append(left, seq)
		return nil
	})
	if err != nil || !slices.Equal(left, seqs[3:]) {
		t.Errorf("outbox after AckChangelog: %v (%v), want %v", left, err, seqs[3:])
	}
	if err := ps.AckChangelog(50); err != nil {
		t.Fatal(err)
	}
	if next, _, _ := ps.ChangelogOffset(); next != 50 {
		t.Errorf("ChangelogOffset after AckChangelog(50) = %d", next)
	}
}

func TestDedup(t *testing.T) {
	t.Run("batch and commit", func(t *testing.T) {
		s := openTest(t, "")
		ps := s.Partition(0)
		b := ps.NewBatch()
		if seen, err := b.Seen("e1"); seen || err != nil {
			t.Fatalf("Seen(e1) = %v, %v", seen, err)
		}
		b.MarkSeen("A", "e1")
		if seen, _ := b.Seen("e1"); !seen {
			t.Fatal("not seen within the batch")
		}
		commit(t, b)
		b = ps.NewBatch()
		if seen, err := b.Seen("e1"); !seen || err != nil {
			t.Fatalf("after commit Seen(e1) = %v, %v", seen, err)
		}
		if seen, _ := s.Partition(1).NewBatch().Seen("e1"); seen {
			t.Error("seen in another partition")
		}
	})
	t.Run("expired (clock injected)", func(t *testing.T) {
		s := openTest(t, "", func(o *Options) { o.DedupTTL = time.Hour })
		s.now = func() time.Time { return time.Now().Add(-time.Hour - 2*time.Second) }
		b := s.Partition(0).NewBatch()
		b.MarkSeen("A", "old")
		commit(t, b)
		if seen, _ := s.Partition(0).NewBatch().Seen("old"); seen {
			t.Error("marker written an hour ago still seen")
		}
	})
	t.Run("expires with a real 1s TTL", func(t *testing.T) {
		s := openTest(t, "", func(o *Options) { o.DedupTTL = time.Second })
		b := s.Partition(0).NewBatch()
		b.MarkSeen("A", "e")
		commit(t, b)
		seen := func() bool { ok, _ := s.Partition(0).NewBatch().Seen("e"); return ok }
		if !seen() {
			t.Fatal("not seen right after commit")
		}
		if !eventually(5*time.Second, func() bool { return !seen() }) {
			t.Error("marker with a 1s TTL still seen after 5s")
		}
	})
}

func TestOffsets(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ps := s.Partition(5)
	if got, err := ps.Offsets(); err != nil || len(got) != 0 {
		t.Fatalf("fresh offsets %v, %v", got, err)
	}
	b := ps.NewBatch()
	b.SetOffset("bookings", 10)
	b.SetOffset("activity", 3)
	b.SetOffset("bookings", 12)
	commit(t, b)
	b = ps.NewBatch()
	b.SetOffset("activity", 1<<40)
	commit(t, b)
	s.Close()
	s = openTest(t, dir)
	want := map[string]int64{"bookings": 12, "activity": 1 << 40}
	if got, _ := s.Partition(5).Offsets(); !maps.Equal(got, want) {
		t.Errorf("offsets %v, want %v", got, want)
	}
	if got, _ := s.Partition(50).Offsets(); len(got) != 0 {
		t.Errorf("partition 50 offsets %v", got)
	}
}

// fill writes members, timers, an outbox record, a dedup marker and an
// offset in partition p.
func fill(t *testing.T, s *Store, p Partition, n int) {
	t.Helper()
	b := s.Partition(p).NewBatch()
	for i := range n {
		st := testState(i, int64(1000+i))
		b.Put(mid(i), &st, 0)
		b.MarkSeen(mid(i), "e"+string(mid(i)))
	}
	b.Append(mid(0), OutboxRecord{Topic: "alerts"})
	b.SetOffset("bookings", int64(n))
	commit(t, b)
}

func TestDropPartition(t *testing.T) {
	s := openTest(t, "")
	for _, p := range []Partition{1, 10, 11, 2} {
		fill(t, s, p, 20)
	}
	before := dump(t, s)
	if err := s.DropPartition(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	after := dump(t, s)
	for k := range before {
		p, _ := parsePartition([]byte(k))
		if _, kept := after[k]; kept == (p == 1) {
			t.Errorf("key %q kept=%v", k, kept)
		}
	}
	var st operators.MemberState
	if ok, _ := s.Partition(1).Get(mid(0), &st); ok {
		t.Error("dropped member still cached")
	}
	if ok, _ := s.Partition(10).Get(mid(0), &st); !ok {
		t.Error("partition 10 lost its member")
	}
	if ps, _ := s.Partitions(); !slices.Equal(ps, []Partition{2, 10, 11}) {
		t.Errorf("Partitions = %v", ps)
	}
}

func TestRange(t *testing.T) {
	s := openTest(t, "")
	fill(t, s, 3, 50)
	fill(t, s, 4, 5)
	var ids []operators.MemberID
	err := s.Partition(3).Range(t.Context(), func(id operators.MemberID, st *operators.MemberState) error {
		ids = append(ids, id)
		var i int
		for i = range 50 {
			if mid(i) == id {
				break
			}
		}
		want := testState(i, int64(1000+i))
		if encoded(st) != encoded(&want) {
			t.Errorf("Range %s: %+v", id, st)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 50 || !slices.IsSorted(ids) {
		t.Errorf("Range visited %d members, sorted %v", len(ids), slices.IsSorted(ids))
	}
}

func TestStats(t *testing.T) {
	s := openTest(t, "")
	fill(t, s, 0, 30)
	fill(t, s, 7, 10)
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Partitions: []Partition{0, 7}, Members: 40, Timers: 40, OutboxDepth: 2, DedupMarkers: 40, CachedStates: 40}
	if !slices.Equal(st.Partitions, want.Partitions) || st.Members != want.Members || st.Timers != want.Timers ||
		st.OutboxDepth != want.OutboxDepth || st.DedupMarkers != want.DedupMarkers || st.CachedStates != want.CachedStates {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if st.CachedBytes <= 0 || st.DiskBytes <= 0 {
		t.Errorf("CachedBytes %d, DiskBytes %d", st.CachedBytes, st.DiskBytes)
	}
	if st.ValueLogBytes < 0 || st.ValueLogBytes >= st.DiskBytes {
		t.Errorf("ValueLogBytes %d of DiskBytes %d: want a part of it (the memtables' files are not value log)", st.ValueLogBytes, st.DiskBytes)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Run("locked", func(t *testing.T) {
		dir := t.TempDir()
		openTest(t, dir)
		o := DefaultOptions(dir)
		_, err := Open(o)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second Open = %v, want ErrLocked", err)
		}
		t.Log(err)
	})
	t.Run("dir is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{f, filepath.Join(f, "sub")} {
			_, err := Open(DefaultOptions(dir))
			if !errors.Is(err, ErrNotWritable) {
				t.Errorf("Open(%s) = %v, want ErrNotWritable", dir, err)
			}
		}
	})
	t.Run("invalid options", func(t *testing.T) {
		tests := []struct {
			mod   func(*Options)
			field string
		}{
			{func(o *Options) { o.Dir = "" }, "Dir"},
			{func(o *Options) { o.MemoryBudget = mib }, "MemoryBudget"},
			{func(o *Options) { o.GCInterval = -1 }, "GCInterval"},
			{func(o *Options) { o.DedupTTL = time.Millisecond }, "DedupTTL"},
		}
		for _, tt := range tests {
			o := DefaultOptions(t.TempDir())
			tt.mod(&o)
			err := o.Validate()
			if err == nil || !contains(err.Error(), "Options."+tt.field) {
				t.Errorf("Validate with bad %s = %v", tt.field, err)
			}
		}
	})
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

func TestClose(t *testing.T) {
	s, err := Open(DefaultOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ps := s.Partition(0)
	b := ps.NewBatch()
	st := testState(1, 5)
	b.Put("A", &st, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	var got operators.MemberState
	calls := map[string]error{}
	_, calls["Get"] = ps.Get("A", &got)
	_, calls["Offsets"] = ps.Offsets()
	calls["Due"] = ps.Due(t.Context(), 10, 0, func(operators.MemberID, int64) error { return nil })
	calls["Outbox"] = ps.Outbox(t.Context(), func(uint64, OutboxRecord) error { return nil })
	calls["Ack"] = ps.Ack(1)
	calls["AckChangelog"] = ps.AckChangelog(1, 1)
	calls["Range"] = ps.Range(t.Context(), func(operators.MemberID, *operators.MemberState) error { return nil })
	_, calls["Seen"] = ps.NewBatch().Seen("e")
	calls["Commit"] = b.Commit(t.Context())
	_, calls["Partitions"] = s.Partitions()
	_, calls["Stats"] = s.Stats()
	calls["DropPartition"] = s.DropPartition(t.Context(), 0)
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestBatchDone(t *testing.T) {
	s := openTest(t, "")
	b := s.Partition(0).NewBatch()
	commit(t, b)
	if err := b.Commit(t.Context()); !errors.Is(err, ErrBatchDone) {
		t.Errorf("second Commit = %v", err)
	}
	b = s.Partition(0).NewBatch()
	b.Discard()
	if err := b.Commit(t.Context()); !errors.Is(err, ErrBatchDone) {
		t.Errorf("Commit after Discard = %v", err)
	}
}

// TestDueFloor: a Due scan starts at the partition's due floor, not at the
// first timer key; entries a commit inserts below the floor (even one that
// failed halfway through a split commit) are still reported.
func TestDueFloor(t *testing.T) {
	s := openTest(t, "")
	ps := s.Partition(2)
	scan := func(before int64) []operators.MemberID {
		t.Helper()
		var out []operators.MemberID
		if err := ps.Due(t.Context(), before, 0, func(id operators.MemberID, _ int64) error {
			out = append(out, id)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	put := func(id operators.MemberID, due, prev int64) {
		t.Helper()
		b := ps.NewBatch()
		st := testState(0, due)
		b.Put(id, &st, prev)
		commit(t, b)
	}
	floor := func() int64 { return ps.st.dueFloor.Load() }

	put("A", 500, 0)
	if got := scan(1000); !slices.Equal(got, []operators.MemberID{"A"}) {
		t.Fatalf("scan(1000) = %v, want [A]", got)
	}
	if floor() != 500 {
		t.Errorf("floor after reporting A at 500 = %d, want 500", floor())
	}
	// A moves past the bound: a complete scan with no report raises the
	// floor to its bound.
	put("A", 5000, 500)
	if got := scan(1000); got != nil {
		t.Fatalf("scan(1000) = %v, want none", got)
	}
	if floor() != 1000 {
		t.Errorf("floor after an empty scan to 1000 = %d, want 1000", floor())
	}
	// An entry below the floor (a late member) lowers it.
	put("B", 200, 0)
	if floor() != 200 {
		t.Errorf("floor after inserting an entry at 200 = %d, want 200", floor())
	}
	if got := scan(6000); !slices.Equal(got, []operators.MemberID{"B", "A"}) {
		t.Fatalf("scan(6000) = %v, want [B A]", got)
	}
	// Not moved by the caller: reported again.
	if got := scan(6000); !slices.Equal(got, []operators.MemberID{"B", "A"}) {
		t.Fatalf("scan(6000) again = %v, want [B A]", got)
	}
	b := ps.NewBatch()
	b.Delete("A", 5000)
	b.Delete("B", 200)
	commit(t, b)
	if got := scan(6000); got != nil {
		t.Fatalf("scan(6000) after deletes = %v, want none", got)
	}

	// A split commit that fails after its first transaction: the entries
	// it wrote are below the floor (6000) and must be found.
	s.txnBytes = 300
	crash := errors.New("crash")
	s.afterPart = func(int) error { return crash }
	b = ps.NewBatch()
	for i := range 20 {
		st := testState(i, int64(100+i))
		b.Put(mid(i), &st, 0)
	}
	if err := b.Commit(t.Context()); !errors.Is(err, crash) {
		t.Fatalf("Commit = %v, want the simulated crash", err)
	}
	s.afterPart = nil
	got := scan(7000)
	if len(got) == 0 {
		t.Fatal("no entry of the failed split commit reported")
	}
	if floor() > 100 {
		t.Errorf("floor after the failed commit's scan = %d, want <= 100 (its first entry)", floor())
	}
	// Loading a partition rebuilds its index: the floor is forgotten.
	l, err := ps.NewLoader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	z := testState(0, 50)
	if err := l.Member("Z", z.AppendEncode(nil)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Finish(t.Context(), map[string]int64{"bookings": 1}, 0); err != nil {
		t.Fatal(err)
	}
	if got := scan(7000); !slices.Contains(got, "Z") {
		t.Errorf("scan after a load = %v, want Z (due 50) in it", got)
	}
}

// TestBadgerLogLines: Badger's messages go through the store's logger as
// JSON lines with each key once (the store's logger already carries a
// "component"), marked by their message.
func TestBadgerLogLines(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel).With().Str("component", "state").Logger()
	s := openTest(t, "", func(o *Options) { o.Logger = log })
	b := s.Partition(0).NewBatch()
	putMembers(b, 0, 10)
	commit(t, b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	badgerLines := 0
	for line := range bytes.Lines(buf.Bytes()) {
		keys := map[string]int{}
		dec := json.NewDecoder(bytes.NewReader(line))
		if _, err := dec.Token(); err != nil { // {
			t.Fatalf("log line %q: %v", line, err)
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			keys[k.(string)]++
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			if k == "message" && v == "badger" {
				badgerLines++
			}
		}
		for k, n := range keys {
			if n > 1 {
				t.Errorf("log line %q has key %q %d times", line, k, n)
			}
		}
	}
	if badgerLines == 0 {
		t.Fatalf("no Badger line logged at debug:\n%s", buf.String())
	}
}
