package gen

import (
	"testing"

	"github.com/churnflow/churnflow/operators"
)

// TestStates checks that States applies the stream's good events: every
// member with one has a state, no one else does, none is still new, and
// bookings were counted.
func TestStates(t *testing.T) {
	engine, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Members, cfg.Days, cfg.Tiers = 300, 365, engine.Config().Tiers
	states, err := States(engine, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	members := map[operators.MemberID]bool{}
	var r Record
	for s.Next(&r) {
		if r.Bad == "" {
			members[r.Member] = true
		}
	}
	if len(states) != len(members) || len(states) == 0 {
		t.Fatalf("%d states for %d members with good events", len(states), len(members))
	}
	booked := 0
	for id, st := range states {
		if !members[id] {
			t.Errorf("state for %s, who has no good event", id)
		}
		if st.IsNew() {
			t.Errorf("%s: state is new after its events", id)
		}
		booked += int(st.Bookings)
	}
	if booked == 0 {
		t.Error("no member has a booking: the events were not applied")
	}
}
