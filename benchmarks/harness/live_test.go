package harness

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
)

// liveEvent is a booking of member at t with a trip from day t+10 to t+12.
func liveEvent(id, member string, t int64) operators.Event {
	d := operators.DayOf(t)
	return operators.Event{ID: id, Type: operators.TypeBooking, TypeName: "booking", MemberID: operators.MemberID(member),
		OccurredAt: t, Amount: 100, Currency: "EUR", TripStart: d + 10, TripEnd: d + 12,
		Has: operators.FieldAmount | operators.FieldCurrency | operators.FieldTripStart | operators.FieldTripEnd}
}

func decodeLive(t *testing.T, r record) operators.Event {
	t.Helper()
	var e operators.Event
	if err := operators.NewDecoder(nil).Decode(r.value, &e); err != nil {
		t.Fatalf("decode %s: %v", r.value, err)
	}
	if !bytes.Equal(r.key, []byte(e.MemberID)) {
		t.Errorf("key %q, member %q", r.key, e.MemberID)
	}
	return e
}

// TestRestampPacesEventTime: the warm-up at base, then one second of event
// time per rate events, keeping ids, members and trip lengths.
func TestRestampPacesEventTime(t *testing.T) {
	day := int64(20_000) * 86400
	first := day + 6*3600 // 06:00, far from midnight
	var evs []operators.Event
	for i := range 10 {
		// Generated times run days ahead per event; restamp pulls them in.
		evs = append(evs, liveEvent("bk-"+string(rune('a'+i)), "M"+string(rune('0'+i)), first+int64(i)*3*86400))
	}
	live := restamp(evs, 4, 2, time.Hour, 30*time.Second)
	if live.base != first {
		t.Fatalf("base %d, want the first event's time %d", live.base, first)
	}
	if len(live.warm) != 4 || len(live.paced) != 6 {
		t.Fatalf("%d warm-up and %d paced records, want 4 and 6", len(live.warm), len(live.paced))
	}
	for i, r := range append(live.warm, live.paced...) {
		e := decodeLive(t, r)
		want := first
		if i >= 4 {
			want += int64(i-4) / 2
		}
		if e.ID != evs[i].ID || e.MemberID != evs[i].MemberID || e.OccurredAt != want {
			t.Errorf("record %d: %s of %s at %d, want %s of %s at %d", i, e.ID, e.MemberID, e.OccurredAt, evs[i].ID, evs[i].MemberID, want)
		}
		if d := operators.DayOf(want); e.TripStart != d+10 || e.TripEnd != d+12 {
			t.Errorf("record %d: trip days %d..%d, want %d..%d (moved with the booking)", i, e.TripStart, e.TripEnd, d+10, d+12)
		}
	}
}

// TestRestampSkipsMidnight: when the measured events' watermark would cross
// a midnight, base moves past it, into the warm-up.
func TestRestampSkipsMidnight(t *testing.T) {
	midnight := int64(20_001) * 86400
	first := midnight + 3600 - 10 // watermark (minus 1h lateness) 10 s before midnight
	evs := []operators.Event{liveEvent("bk-1", "M1", first), liveEvent("bk-2", "M2", first+100)}
	live := restamp(evs, 1, 1000, time.Hour, 30*time.Second)
	if want := midnight + 3600 + 60; live.base != want {
		t.Fatalf("base %d, want %d (the midnight's watermark plus a minute)", live.base, want)
	}
	if e := decodeLive(t, live.paced[0]); e.OccurredAt != live.base {
		t.Errorf("first paced event at %d, want base %d", e.OccurredAt, live.base)
	}
}

// TestLatencyParts: the parts' p50 and p99 over every alert, and their
// means over the slowest 1 % by total (here the one slowest of 100 alerts).
func TestLatencyParts(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var ts []pipeline.AlertTiming
	for i := range 100 {
		at := pipeline.AlertTiming{Fetch: ms(1), Queue: ms(i), Batch: ms(10), SendWait: 0, Send: ms(5)}
		if i == 37 { // the slowest: a long batch
			at.Batch = ms(500)
		}
		at.Total = at.Fetch + at.Queue + at.Batch + at.SendWait + at.Send
		ts = append(ts, at)
	}
	got := latencyParts(ts)
	want := []LatencyPart{
		{Part: "fetch", P50: 1, P99: 1, SlowestMean: 1},
		{Part: "queue", P50: 50, P99: 99, SlowestMean: 37},
		{Part: "batch", P50: 10, P99: 500, SlowestMean: 500},
		{Part: "send wait", P50: 0, P99: 0, SlowestMean: 0},
		{Part: "send", P50: 5, P99: 5, SlowestMean: 5},
		{Part: "total", P50: 67, P99: 543, SlowestMean: 543},
	}
	if !slices.Equal(got, want) {
		t.Errorf("latencyParts:\n got %+v\nwant %+v", got, want)
	}
	if latencyParts(nil) != nil {
		t.Error("no alerts: want no parts")
	}
}
