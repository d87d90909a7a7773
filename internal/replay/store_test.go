package replay

import (
	"fmt"
	"slices"
	"testing"

	"github.com/churnflow/churnflow/operators"
)

func TestMemStoreCopies(t *testing.T) {
	m := NewMemStore()
	s := operators.MemberState{Due: 10, Region: "north", History: []operators.Booking{{Day: 1}}, Trips: []operators.Trip{{Ref: "trip"}}}
	if err := m.Put("M1", &s); err != nil {
		t.Fatal(err)
	}
	s.History[0].Day = 99
	s.Trips[0].Ref = "changed"
	var got operators.MemberState
	ok, err := m.Get("M1", &got)
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if got.History[0].Day != 1 || got.Trips[0].Ref != "trip" || got.Region != "north" || got.Due != 10 {
		t.Fatalf("the store kept the caller's slices: %+v", got)
	}
	got.History[0].Day = 42
	var again operators.MemberState
	m.Get("M1", &again)
	if again.History[0].Day != 1 {
		t.Fatal("Get handed out the store's slices")
	}
	ok, _ = m.Get("M2", &again)
	if ok || !again.IsNew() || len(again.History) != 0 {
		t.Fatalf("Get of an unknown member: %v %+v", ok, again)
	}
}

// dueOrder collects the members DueBefore visits, re-putting each with the
// given next due (0: none).
func dueOrder(t *testing.T, m *MemStore, before int64, next int64) []string {
	t.Helper()
	var ids []string
	err := m.DueBefore(before, func(id operators.MemberID) error {
		ids = append(ids, string(id))
		var s operators.MemberState
		m.Get(id, &s)
		s.Due = next
		return m.Put(id, &s)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestMemStoreDueBefore(t *testing.T) {
	m := NewMemStore()
	put := func(id string, due int64) {
		s := operators.MemberState{Clock: 1, Due: due}
		if err := m.Put(operators.MemberID(id), &s); err != nil {
			t.Fatal(err)
		}
	}
	put("c", 30)
	put("a", 20)
	put("b", 20)
	put("d", 5)
	put("d", 50) // rescheduled: the entry at 5 is stale
	put("e", 10)
	m.Delete("e") // deleted: its entry is stale
	put("f", 0)   // no timer
	put("g", 15)
	put("g", 40)
	put("g", 15) // back to 15: visited once
	if got := dueOrder(t, m, 31, 100); !slices.Equal(got, []string{"g", "a", "b", "c"}) {
		t.Fatalf("order %v", got)
	}
	if got := dueOrder(t, m, 31, 100); len(got) != 0 {
		t.Fatalf("second scan visited %v", got)
	}
	if got := dueOrder(t, m, 101, 0); !slices.Equal(got, []string{"d", "a", "b", "c", "g"}) {
		t.Fatalf("order %v", got)
	}
	if m.Len() != 6 {
		t.Fatalf("Len %d", m.Len())
	}
	n := 0
	m.Range(func(operators.MemberID, *operators.MemberState) error { n++; return nil })
	if n != 6 {
		t.Fatalf("Range visited %d", n)
	}
}

func TestMemStoreCompactsStaleTimers(t *testing.T) {
	m := NewMemStore()
	for round := int64(1); round <= 50; round++ {
		for i := 0; i < 100; i++ {
			s := operators.MemberState{Clock: 1, Due: 1000 + round}
			m.Put(operators.MemberID(fmt.Sprint("M", i)), &s)
		}
	}
	if m.Timers() > 2*m.Len()+1024 {
		t.Fatalf("%d heap entries for %d members", m.Timers(), m.Len())
	}
	if got := dueOrder(t, m, 2000, 0); len(got) != 100 {
		t.Fatalf("visited %d members after compaction", len(got))
	}
}
