package gen

import (
	"fmt"

	"github.com/churnflow/churnflow/operators"
)

// States decodes (as the pipeline does) and applies every good event of the population cfg describes to
// engine, in stream order, and returns each member's resulting state: the
// states a pipeline would hold after the same traffic, for tests and
// benchmarks that need realistic ones without running a pipeline.
func States(engine *operators.Engine, cfg Config) (map[operators.MemberID]*operators.MemberState, error) {
	s, err := NewStream(cfg)
	if err != nil {
		return nil, err
	}
	dec := operators.NewDecoder(engine.Config().TierNames())
	states := map[operators.MemberID]*operators.MemberState{}
	var (
		r   Record
		ev  operators.Event
		buf []byte
	)
	for s.Next(&r) {
		if r.Bad != "" {
			continue
		}
		buf = r.AppendJSON(buf[:0])
		if err := dec.Decode(buf, &ev); err != nil {
			return nil, fmt.Errorf("generated event %s does not decode: %w", r.Event.ID, err)
		}
		m, ok := states[ev.MemberID]
		if !ok {
			m = &operators.MemberState{}
			states[ev.MemberID] = m
		}
		engine.Apply(m, &ev, nil)
	}
	return states, nil
}
