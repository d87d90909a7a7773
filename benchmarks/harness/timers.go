package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// runTimers measures what firing spec.Due due timers costs when
// spec.Pending other members wait with timers in the future: it loads one
// partition with real member states (a generated population's, repeated
// under new ids), then does what a worker does at a watermark: scan the
// timers index for the members due before it, read each, Advance it, put
// it back, commit. Only the firing is timed.
func runTimers(ctx context.Context, spec PhaseSpec) (PhaseResult, error) {
	opts := spec.stateOptions()
	setMemoryLimit(opts.MemoryBudget)
	engine, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		return PhaseResult{}, err
	}
	samples, end, err := sampleStates(engine, 2000)
	if err != nil {
		return PhaseResult{}, err
	}
	store, err := state.Open(opts)
	if err != nil {
		return PhaseResult{}, err
	}
	defer store.Close()
	ps := store.Partition(0)

	loadStart := time.Now()
	l, err := ps.NewLoader(ctx)
	if err != nil {
		return PhaseResult{}, err
	}
	wm := end
	var enc []byte
	var s operators.MemberState
	load := func(prefix string, i int, due int64) error {
		if err := operators.DecodeState(samples[i%len(samples)], &s); err != nil {
			return err
		}
		s.Due = due
		enc = s.AppendEncode(enc[:0])
		return l.Member(operators.MemberID(fmt.Sprintf("%s%09d", prefix, i)), enc)
	}
	for i := range spec.Pending {
		// Pending timers spread over the year after the watermark.
		if err := load("P", i, wm+1+int64(i%(365*86400))); err != nil {
			l.Abort()
			return PhaseResult{}, err
		}
	}
	for i := range spec.Due {
		if err := load("D", i, wm-int64(spec.Due)+int64(i)); err != nil {
			l.Abort()
			return PhaseResult{}, err
		}
	}
	if _, _, err := l.Finish(ctx, map[string]int64{}, 0); err != nil {
		return PhaseResult{}, err
	}
	res := PhaseResult{LoadMillis: float64(time.Since(loadStart)) / 1e6}

	start := time.Now()
	var due []operators.MemberID
	if err := ps.Due(ctx, wm, spec.Due, func(id operators.MemberID, _ int64) error {
		due = append(due, id)
		return nil
	}); err != nil {
		return res, err
	}
	b := ps.NewBatch()
	var alerts []operators.Alert
	for _, id := range due {
		var m operators.MemberState
		prior, err := ps.Read(id, &m)
		if err != nil {
			b.Discard()
			return res, err
		}
		if !prior.Found {
			continue
		}
		alerts = engine.Advance(&m, id, wm, alerts)
		b.PutPrior(id, &m, prior)
	}
	if err := b.Commit(ctx); err != nil {
		return res, err
	}
	res.FireMillis = float64(time.Since(start)) / 1e6
	res.Fired = len(due)
	res.Members = int64(spec.Pending + spec.Due)
	return res, nil
}

// sampleStates returns the encoded states of a generated population of n
// members after two years of its events, and the end of those years.
func sampleStates(engine *operators.Engine, n int) ([][]byte, int64, error) {
	gc := gen.DefaultConfig()
	gc.Members, gc.Days, gc.Tiers = n, 730, engine.Config().Tiers
	states, err := gen.States(engine, gc)
	if err != nil {
		return nil, 0, err
	}
	out := make([][]byte, 0, len(states))
	for _, m := range states {
		if !m.IsNew() {
			out = append(out, m.AppendEncode(nil))
		}
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("sample states: the generated population has no member")
	}
	return out, gc.End().Unix(), nil
}
