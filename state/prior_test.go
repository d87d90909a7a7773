package state

import (
	"context"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/churnflow/churnflow/operators"
)

// timerDues returns the due times of the member's timer entries in
// partition p.
func timerDues(t *testing.T, s *Store, p Partition, id operators.MemberID) []int64 {
	t.Helper()
	var dues []int64
	for _, k := range keysWithPrefix(t, s, appendPrefix(nil, kindTimer, p)) {
		due, member, ok := parseTimer(k[len(appendPrefix(nil, kindTimer, p)):])
		if !ok {
			t.Fatalf("bad timer key %q", k)
		}
		if operators.MemberID(member) == id {
			dues = append(dues, due)
		}
	}
	return dues
}

// TestReadPrior: the Prior that Read returns carries the member's timer
// entry, which the lazy index lets lag behind the Due, whether the member
// came from the member cache, from Badger or from a value written before
// the index was lazy; PutPrior then moves that entry, not one at the Due.
func TestReadPrior(t *testing.T) {
	s := openTest(t, "")
	ps := s.Partition(3)
	b := ps.NewBatch()
	for _, id := range []operators.MemberID{"A", "B"} {
		st := testState(0, 200)
		b.Put(id, &st, 0)
	}
	commit(t, b)
	// Later Dues, no scan: both entries stay at 200 (lazy).
	b = ps.NewBatch()
	for _, id := range []operators.MemberID{"A", "B"} {
		st := testState(0, 260)
		b.Put(id, &st, 200)
	}
	commit(t, b)
	for _, id := range []operators.MemberID{"A", "B"} {
		if got := timerDues(t, s, 3, id); len(got) != 1 || got[0] != 200 {
			t.Fatalf("%s's timer entries %v, want [200]", id, got)
		}
	}

	check := func(name string, id operators.MemberID, wantIndexed int64, wantHit bool) {
		t.Helper()
		var st operators.MemberState
		hits, _ := s.cache.lookups()
		prior, err := ps.Read(id, &st)
		if err != nil {
			t.Fatalf("%s: Read(%s): %v", name, id, err)
		}
		if after, _ := s.cache.lookups(); (after > hits) != wantHit {
			t.Fatalf("%s: Read(%s) answered by the member cache: %v, want %v", name, id, after > hits, wantHit)
		}
		if !prior.Found || prior.Due != 260 || !prior.indexedKnown || prior.indexed != wantIndexed {
			t.Fatalf("%s: Read(%s) = %+v, want found, Due 260, entry %d", name, id, prior, wantIndexed)
		}
		st.Due = 150 // earlier than the entry: it must move
		b := ps.NewBatch()
		b.PutPrior(id, &st, prior)
		commit(t, b)
		if got := timerDues(t, s, 3, id); len(got) != 1 || got[0] != 150 {
			t.Errorf("%s: after PutPrior with Due 150, %s's timer entries %v, want [150]", name, id, got)
		}
	}
	check("member cache", "A", 200, true)

	// B from Badger: reopened, the member cache is empty.
	s.Close()
	s = openTest(t, s.opts.Dir)
	ps = s.Partition(3)
	check("Badger", "B", 200, false)

	// C written before the index was lazy: a bare state whose entry is at
	// its Due.
	st := testState(0, 260)
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(memberKey(nil, 3, "C"), st.AppendEncode(nil)); err != nil {
			return err
		}
		return txn.Set(timerKey(nil, 3, 260, "C"), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	check("legacy value", "C", 260, false)

	// A member without state: the zero Prior, which PutPrior accepts.
	var none operators.MemberState
	prior, err := ps.Read("Z", &none)
	if err != nil || prior != (Prior{}) {
		t.Fatalf("Read(Z) = %+v, %v; want the zero Prior", prior, err)
	}
	none = testState(0, 400)
	b = ps.NewBatch()
	b.PutPrior("Z", &none, prior)
	commit(t, b)
	if got := timerDues(t, s, 3, "Z"); len(got) != 1 || got[0] != 400 {
		t.Errorf("new member Z's timer entries %v, want [400]", got)
	}
	// DeletePrior removes the entry where the read saw it.
	if prior, err = ps.Read("A", &none); err != nil {
		t.Fatal(err)
	}
	b = ps.NewBatch()
	b.DeletePrior("A", prior)
	commit(t, b)
	if got := timerDues(t, s, 3, "A"); len(got) != 0 {
		t.Errorf("after DeletePrior, A's timer entries %v, want none", got)
	}
}

// BenchmarkReadModifyWrite: a worker's read-modify-write of 1,000 members
// held in the member cache per batch (among 100,000), with Commit taking
// the members' timer entries from the reads (PutPrior) or looking them up
// again (Put with the read's Due). Reported per member.
func BenchmarkReadModifyWrite(b *testing.B) {
	const members, perBatch = 100_000, 1000
	s := openTest(b, "", func(o *Options) { o.MemoryBudget = 256 * mib })
	ps := s.Partition(0)
	for lo := 0; lo < members; lo += perBatch {
		batch := ps.NewBatch()
		for i := lo; i < lo+perBatch; i++ {
			st := testState(i, 1_000_000+int64(i))
			batch.Put(mid(i), &st, 0)
		}
		if err := batch.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	for _, how := range []string{"put-prior", "put-due"} {
		b.Run(how, func(b *testing.B) {
			var st operators.MemberState
			next := 0
			for b.Loop() {
				batch := ps.NewBatch()
				for range perBatch {
					id := mid(next * 7919 % members)
					next++
					prior, err := ps.Read(id, &st)
					if err != nil || !prior.Found {
						b.Fatalf("Read(%s) = %+v, %v", id, prior, err)
					}
					st.Due += 60 // later: the lazy index keeps the entry
					st.PointsBalance++
					if how == "put-prior" {
						batch.PutPrior(id, &st, prior)
					} else {
						batch.Put(id, &st, prior.Due)
					}
				}
				if err := batch.Commit(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/member")
		})
	}
}
