package benchmarks

// Member-state benchmarks (issue 4): updating 1,000,000 members through the
// state package against Badger's own batched writes of the same bytes, the
// cost of a timer scan with 100,000 versus 10,000,000 pending timers, and
// (state_rss_test.go) peak RSS at 1,000,000 members. Results and commands
// are in RESULTS.md, "Member state (Badger)".
//
// The big stores are built once per process and shared by every run of a
// benchmark function (Go calls each one several times while it sizes b.N);
// TestMain removes them. The 10 M-timer store takes a minute or two to build
// and is skipped unless CHURNFLOW_BENCH_10M=1.

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

const (
	stateMembers   = 1_000_000 // members in the update benchmarks
	stateBatch     = 1_000     // members per Commit / per Badger transaction
	stateBase      = int64(1_767_225_600)
	statePermPrime = 7919 // i*p mod n permutes 0..n-1 for n = 2^a 5^b
	env10M         = "CHURNFLOW_BENCH_10M"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeStateFixtures()
	os.Exit(code)
}

var (
	fixtureMu     sync.Mutex
	fixtureRoot   string
	fixtureClose  []func()
	templatesOnce sync.Once
	templates     []operators.MemberState
)

// fixtureDir returns a new directory under the process's fixture root.
func fixtureDir(tb testing.TB, name string) string {
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if fixtureRoot == "" {
		var err error
		if fixtureRoot, err = os.MkdirTemp("", "churnflow-bench-state-"); err != nil {
			tb.Fatal(err)
		}
	}
	dir := filepath.Join(fixtureRoot, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func onFixtureClose(f func()) {
	fixtureMu.Lock()
	fixtureClose = append(fixtureClose, f)
	fixtureMu.Unlock()
}

func closeStateFixtures() {
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	for i := len(fixtureClose) - 1; i >= 0; i-- {
		fixtureClose[i]()
	}
	fixtureClose = nil
	if fixtureRoot != "" {
		os.RemoveAll(fixtureRoot)
		fixtureRoot = ""
	}
}

// memberTemplates returns 64 realistic member states built by the operators
// engine from an enrolment and 2-9 flight or hotel bookings with logins and
// points in between: 100-300 bytes encoded (stateTemplateSizes).
func memberTemplates(tb testing.TB) []operators.MemberState {
	templatesOnce.Do(func() {
		eng, err := operators.NewEngine(operators.DefaultConfig())
		if err != nil {
			tb.Fatal(err)
		}
		tiers := eng.Config().TierNames()
		regions := []string{"north", "south", "east", "west", "PEK-office-017"}
		r := rand.New(rand.NewPCG(42, 1))
		templates = make([]operators.MemberState, 64)
		for i := range templates {
			s := &templates[i]
			id := operators.MemberID("M" + strconv.Itoa(i))
			t := stateBase - int64(400+r.IntN(3*365))*86400
			e := operators.Event{
				ID: "en-" + strconv.Itoa(i), Type: operators.TypeEnrolment, MemberID: id, OccurredAt: t,
				Has:  operators.FieldTier | operators.FieldRegion | operators.FieldAccountManager,
				Tier: tiers[r.IntN(len(tiers))], Region: regions[r.IntN(len(regions))],
				AccountManager: "A-" + strconv.Itoa(r.IntN(200)),
			}
			eng.Apply(s, &e, nil)
			for j, nb := 0, 2+r.IntN(8); j < nb; j++ {
				t += int64(3+r.IntN(40)) * 86400
				product := operators.ProductFlight
				if r.IntN(3) == 0 {
					product = operators.ProductHotel
				}
				e = operators.Event{
					ID: fmt.Sprintf("bk-%d-%d", i, j), Type: operators.TypeBooking, MemberID: id, OccurredAt: t,
					Has: operators.FieldAmount | operators.FieldDistance | operators.FieldSegments |
						operators.FieldDiscount | operators.FieldProduct,
					Amount: 80 + 2000*r.Float64(), DistanceKm: float64(300 + r.IntN(8000)), Segments: int64(1 + r.IntN(2)),
					Discount: 0.4 + 0.8*r.Float64(), Product: product,
				}
				eng.Apply(s, &e, nil)
				t += int64(1+r.IntN(5)) * 86400
				e = operators.Event{ID: fmt.Sprintf("lg-%d-%d", i, j), Type: operators.TypeLogin, MemberID: id, OccurredAt: t}
				eng.Apply(s, &e, nil)
				if r.IntN(2) == 0 {
					e = operators.Event{
						ID: fmt.Sprintf("pt-%d-%d", i, j), Type: operators.TypePointsEarned, MemberID: id, OccurredAt: t + 3600,
						Has: operators.FieldPoints, Points: int64(100 + r.IntN(3000)),
					}
					eng.Apply(s, &e, nil)
				}
			}
		}
	})
	return templates
}

// TestStateTemplateSizes checks that the benchmark members are the size the
// benchmarks claim (100-300 bytes encoded).
func TestStateTemplateSizes(t *testing.T) {
	sum, lo, hi := 0, 1<<30, 0
	var buf []byte
	for i := range memberTemplates(t) {
		s := memberState(i, 0)
		buf = s.AppendEncode(buf[:0])
		sum += len(buf)
		lo, hi = min(lo, len(buf)), max(hi, len(buf))
	}
	mean := sum / len(templates)
	t.Logf("encoded member states: mean %d bytes, range %d-%d", mean, lo, hi)
	if mean < 100 || mean > 300 {
		t.Errorf("mean encoded state %d bytes, want 100-300", mean)
	}
}

// memberState is member i's state after pass updates: a template with the
// member's own points and due time. History and Trips are shared with the
// template and must not be modified.
func memberState(i, pass int) operators.MemberState {
	s := templates[i%len(templates)]
	s.PointsBalance += int64(i%5000) + int64(pass)
	s.Bookings += uint32(pass)
	s.Due = memberDue(i, pass, s.Clock)
	return s
}

// memberDue moves a member's timer on every pass, so that each update
// reschedules it (the common case: Apply moves Due).
func memberDue(i, pass int, clock int64) int64 {
	return clock + 86400 + int64((i*31+pass*7)%(120*24))*3600
}

// memberOrder is the i-th member updated in a pass: a fixed permutation,
// so updates hit members uniformly at random, not in key order.
func memberOrder(i int) int { return int(uint64(i) * statePermPrime % stateMembers) }

func memberID(dst []byte, i int) []byte {
	dst = append(dst[:0], "M0000000"...) // "M0001234"
	for p := len(dst) - 1; i > 0; p-- {
		dst[p] = byte('0' + i%10)
		i /= 10
	}
	return dst
}

// stateUpdater drives member updates through the state package, batch by
// batch, cycling through all members; it keeps its place between runs.
type stateUpdater struct {
	st     *state.Store
	ps     *state.PartitionStore
	next   int // updates done so far, over all passes
	states []operators.MemberState
	idBuf  []byte
	batch  *state.Batch
	inB    int
}

func newStateUpdater(st *state.Store) *stateUpdater {
	return &stateUpdater{st: st, ps: st.Partition(0), states: make([]operators.MemberState, stateBatch)}
}

// update applies the next n member updates (Get + change + Put, one Commit
// per stateBatch members).
func (u *stateUpdater) update(ctx context.Context, n int) error {
	for ; n > 0; n-- {
		if u.batch == nil {
			u.batch = u.ps.NewBatch()
			u.inB = 0
		}
		pass, i := u.next/stateMembers, memberOrder(u.next%stateMembers)
		u.idBuf = memberID(u.idBuf, i)
		id := operators.MemberID(u.idBuf)
		s := &u.states[u.inB]
		found, err := u.ps.Get(id, s)
		if err != nil {
			return err
		}
		var prevDue int64
		if found {
			prevDue = s.Due
			s.Bookings++
			s.PointsBalance++
			s.Due = memberDue(i, pass, s.Clock)
		} else {
			// Copy the template's slices into s's own: Get decodes into
			// them next time, and must not write into a template.
			tpl := memberState(i, pass)
			hist, trips := s.History[:0], s.Trips[:0]
			*s = tpl
			s.History = append(hist, tpl.History...)
			s.Trips = append(trips, tpl.Trips...)
		}
		u.batch.Put(id, s, prevDue)
		u.next++
		u.inB++
		if u.inB == stateBatch || u.next%stateMembers == 0 {
			if err := u.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (u *stateUpdater) flush(ctx context.Context) error {
	if u.batch == nil {
		return nil
	}
	u.batch.SetOffset("churnflow.bookings", int64(u.next))
	err := u.batch.Commit(ctx)
	u.batch = nil
	return err
}

type updateFixture struct {
	once    sync.Once
	u       *stateUpdater
	loadDur time.Duration
	err     error
}

var stateUpdateFix = map[int64]*updateFixture{256: {}, 512: {}}

// BenchmarkStateUpdate1M: one op is one member update (Get, change the
// counters and the due time, Put; one Commit per 1,000 members) in a store
// that already holds 1,000,000 members, in random member order, member
// cache on. budget=256MiB is the default budget, whose member cache holds
// about 57 % of the members (the others are read from Badger);
// budget=512MiB holds all of them. The first load of the 1 M members is
// timed on its own (load-ns/member).
func BenchmarkStateUpdate1M(b *testing.B) {
	memberTemplates(b)
	ctx := context.Background()
	for _, mib := range []int64{256, 512} {
		b.Run(fmt.Sprintf("budget=%dMiB", mib), func(b *testing.B) {
			f := stateUpdateFix[mib]
			f.once.Do(func() {
				opts := state.DefaultOptions(fixtureDir(b, "update-"+strconv.FormatInt(mib, 10)))
				opts.MemoryBudget = mib << 20
				st, err := state.Open(opts)
				if err != nil {
					f.err = err
					return
				}
				onFixtureClose(func() { st.Close() })
				f.u = newStateUpdater(st)
				start := time.Now()
				if f.err = f.u.update(ctx, stateMembers); f.err == nil {
					f.err = f.u.flush(ctx)
				}
				f.loadDur = time.Since(start)
			})
			if f.err != nil {
				b.Fatal(f.err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			if err := f.u.update(ctx, b.N); err != nil {
				b.Fatal(err)
			}
			if err := f.u.flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "members/s")
			b.ReportMetric(float64(f.loadDur.Nanoseconds())/stateMembers, "load-ns/member")
			if b.N >= stateBatch { // Stats scans every key: not for the small sizing runs
				if stats, err := f.u.st.Stats(); err == nil {
					b.ReportMetric(float64(stats.CachedStates), "cached-states")
				}
			}
		})
	}
}

// rawBadgerOptions are the Badger options of the raw baseline: what a
// store with the default 256 MiB budget uses.
func rawBadgerOptions(dir string) badger.Options {
	return state.DefaultOptions(dir).BadgerOptions().WithLogger(nil)
}

// rawWriter writes the bytes the state package writes for a member update
// straight to Badger: the member key and its encoded state and, with
// timers, the timer move (delete the old t/ key, set the new one), in
// transactions of stateBatch members.
type rawWriter struct {
	db     *badger.DB
	timers bool
	next   int
	txn    *badger.Txn
	inT    int
	idBuf  []byte
}

// rawKey builds the state package's keys (state/keys.go): "m/0/<member>"
// and "t/0/<due:8>/<member>" with the due time's sign bit flipped.
func rawKey(prefix byte, due int64, id []byte) []byte {
	k := make([]byte, 0, 4+8+1+len(id))
	k = append(k, prefix, '/', '0', '/')
	if prefix == 't' {
		k = binary.BigEndian.AppendUint64(k, uint64(due)^1<<63)
		k = append(k, '/')
	}
	return append(k, id...)
}

func (w *rawWriter) write(n int) error {
	for ; n > 0; n-- {
		if w.txn == nil {
			w.txn = w.db.NewTransaction(true)
			w.inT = 0
		}
		pass, i := w.next/stateMembers, memberOrder(w.next%stateMembers)
		w.idBuf = memberID(w.idBuf, i)
		s := memberState(i, pass)
		val := s.AppendEncode(make([]byte, 0, 320)) // Badger keeps the slice until commit
		if err := w.txn.Set(rawKey('m', 0, w.idBuf), val); err != nil {
			return err
		}
		if w.timers {
			if pass > 0 {
				if err := w.txn.Delete(rawKey('t', memberDue(i, pass-1, s.Clock), w.idBuf)); err != nil {
					return err
				}
			}
			if err := w.txn.Set(rawKey('t', s.Due, w.idBuf), nil); err != nil {
				return err
			}
		}
		w.next++
		w.inT++
		if w.inT == stateBatch || w.next%stateMembers == 0 {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *rawWriter) flush() error {
	if w.txn == nil {
		return nil
	}
	var off [8]byte
	binary.BigEndian.PutUint64(off[:], uint64(w.next))
	if err := w.txn.Set([]byte("o/0/churnflow.bookings"), off[:]); err != nil {
		return err
	}
	err := w.txn.Commit()
	w.txn = nil
	return err
}

type rawFixture struct {
	once    sync.Once
	w       *rawWriter
	loadDur time.Duration
	err     error
}

var rawFix [2]rawFixture // members only, members+timers

// BenchmarkBadgerRawBatchedWrite1M is the baseline of BenchmarkStateUpdate1M:
// one op writes one member's key and encoded state (the same bytes) with
// Badger directly, 1,000 members per transaction, into a database already
// holding the 1,000,000 members, in the same member order. "members" writes
// only the member states; "members+timers" also moves each member's timer
// key, as the state package must. Encoding the state is included in both
// (≈0.2-0.4 µs, see operators' StateCodec benchmark).
func BenchmarkBadgerRawBatchedWrite1M(b *testing.B) {
	memberTemplates(b)
	for vi, name := range []string{"members", "members+timers"} {
		b.Run(name, func(b *testing.B) {
			f := &rawFix[vi]
			f.once.Do(func() {
				db, err := badger.Open(rawBadgerOptions(fixtureDir(b, "raw-"+strconv.Itoa(vi))))
				if err != nil {
					f.err = err
					return
				}
				onFixtureClose(func() { db.Close() })
				f.w = &rawWriter{db: db, timers: vi == 1}
				start := time.Now()
				if f.err = f.w.write(stateMembers); f.err == nil {
					f.err = f.w.flush()
				}
				f.loadDur = time.Since(start)
			})
			if f.err != nil {
				b.Fatal(f.err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			if err := f.w.write(b.N); err != nil {
				b.Fatal(err)
			}
			if err := f.w.flush(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "members/s")
			b.ReportMetric(float64(f.loadDur.Nanoseconds())/stateMembers, "load-ns/member")
		})
	}
}

// Timer scan fixtures: n members, each with one timer, due times a
// permutation of stateBase+1 .. stateBase+n (one per second).
type timerFixture struct {
	once     sync.Once
	ps       *state.PartitionStore
	buildDur time.Duration
	err      error
}

var timerFix = map[int]*timerFixture{100_000: {}, 10_000_000: {}}

const (
	timerDueCount = 1_000 // timers each scan returns
	timerBatch    = 2_000 // members per Commit while building
)

func buildTimerStore(ctx context.Context, tb testing.TB, n int) (*state.PartitionStore, error) {
	st, err := state.Open(state.DefaultOptions(fixtureDir(tb, "timers-"+strconv.Itoa(n))))
	if err != nil {
		return nil, err
	}
	onFixtureClose(func() { st.Close() })
	ps := st.Partition(0)
	states := make([]operators.MemberState, timerBatch)
	var idBuf []byte
	for lo := 0; lo < n; lo += timerBatch {
		b := ps.NewBatch()
		for i := lo; i < min(lo+timerBatch, n); i++ {
			s := &states[i-lo]
			due := stateBase + 1 + int64(uint64(i)*statePermPrime%uint64(n))
			*s = operators.MemberState{Clock: stateBase - 86400, Enrolled: stateBase - 86400*400, Due: due}
			idBuf = append(idBuf[:0], 'T')
			idBuf = strconv.AppendInt(idBuf, int64(i), 10)
			b.Put(operators.MemberID(idBuf), s, 0)
		}
		b.SetOffset("churnflow.bookings", int64(lo+timerBatch))
		if err := b.Commit(ctx); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// BenchmarkTimerScan: one op is one Due call returning 1,000 due timers
// (limit 1,000, 1,500 due) from a partition holding 100,000 or 10,000,000
// pending timers. The two must be within 2× of each other. build-s is the
// time it took to write the fixture through the state package.
func BenchmarkTimerScan(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{100_000, 10_000_000} {
		b.Run(fmt.Sprintf("pending=%d", n), func(b *testing.B) {
			if n > 1_000_000 && os.Getenv(env10M) != "1" {
				b.Skipf("set %s=1 to build the %d-timer store (a minute or two)", env10M, n)
			}
			f := timerFix[n]
			f.once.Do(func() {
				start := time.Now()
				f.ps, f.err = buildTimerStore(ctx, b, n)
				f.buildDur = time.Since(start)
			})
			if f.err != nil {
				b.Fatal(f.err)
			}
			before := stateBase + timerDueCount*3/2 // 1,500 due at or before it
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, last := 0, int64(0)
				err := f.ps.Due(ctx, before, timerDueCount, func(id operators.MemberID, due int64) error {
					got++
					if due < last || due > before {
						return fmt.Errorf("timer %s at %d after %d (bound %d)", id, due, last, before)
					}
					last = due
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if got != timerDueCount {
					b.Fatalf("Due returned %d timers, want %d", got, timerDueCount)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/timerDueCount, "ns/timer")
			b.ReportMetric(f.buildDur.Seconds(), "build-s")
		})
	}
}
