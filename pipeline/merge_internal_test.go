package pipeline

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestMergeOrder checks the cross-topic merge: records go in (occurred_at,
// topic, offset) order, a topic is held back while the other has nothing
// buffered and is not caught up as of a fetch issued after the record
// arrived, and rejected records are never held.
func TestMergeOrder(t *testing.T) {
	arrived := time.Unix(1000, 0) // when every record's fetch reached the worker
	rec := func(topic string, off, at int64) *pending {
		return &pending{msg: kafka.Message{Topic: topic, Offset: off}, t: at, arrived: arrived}
	}
	type step struct {
		topic string
		off   int64
	}
	tests := []struct {
		name       string
		b, a       []*pending
		bHWM, aHWM int64 // fetched up to these, known
		aUnknown   bool
		aStale     bool // activity's last fetch was issued before the records arrived
		want       []step
	}{
		{
			name: "interleave by time, bookings first on ties",
			b:    []*pending{rec("b", 0, 10), rec("b", 1, 30)},
			a:    []*pending{rec("a", 0, 10), rec("a", 1, 20), rec("a", 2, 40)},
			bHWM: 2, aHWM: 3,
			want: []step{{"b", 0}, {"a", 0}, {"a", 1}, {"b", 1}, {"a", 2}},
		},
		{
			name: "held back while the other topic is not caught up",
			b:    []*pending{rec("b", 0, 10), rec("b", 1, 30)},
			a:    []*pending{rec("a", 0, 20)},
			bHWM: 2, aHWM: 5, // activity has offsets 1..4 still to fetch
			want: []step{{"b", 0}, {"a", 0}},
		},
		{
			name: "held back while the other topic was never fetched",
			b:    []*pending{rec("b", 0, 10)},
			bHWM: 1, aUnknown: true,
			want: nil,
		},
		{
			name: "other topic caught up: go on",
			b:    []*pending{rec("b", 0, 10), rec("b", 1, 30)},
			a:    []*pending{rec("a", 0, 20)},
			bHWM: 2, aHWM: 1,
			want: []step{{"b", 0}, {"a", 0}, {"b", 1}},
		},
		{
			name: "other topic caught up only as of a fetch older than the record: held back",
			b:    []*pending{rec("b", 0, 10), rec("b", 1, 30)},
			a:    []*pending{rec("a", 0, 20)},
			bHWM: 2, aHWM: 1, aStale: true,
			want: []step{{"b", 0}, {"a", 0}},
		},
		{
			name: "rejected records are not held",
			b:    []*pending{rec("b", 0, rejected), rec("b", 1, 30)},
			bHWM: 2, aUnknown: true,
			want: []step{{"b", 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &worker{}
			fresh, stale := arrived.Add(time.Second), arrived.Add(-time.Second)
			aAsOf := fresh
			if tt.aStale {
				aAsOf = stale
			}
			w.in[tBookings] = input{name: "b", buf: tt.b, hwm: tt.bHWM, fetched: tt.bHWM, known: true, asOf: fresh}
			w.in[tActivity] = input{name: "a", buf: tt.a, hwm: tt.aHWM, fetched: int64(len(tt.a)), known: !tt.aUnknown, asOf: aAsOf}
			var got []step
			for pd := w.next(); pd != nil; pd = w.next() {
				got = append(got, step{pd.msg.Topic, pd.msg.Offset})
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// TestInputBufferStaysCompact checks that a topic's buffer that never
// empties does not grow with every append: popped records are dropped and
// the live ones keep their order.
func TestInputBufferStaysCompact(t *testing.T) {
	var in input
	next, want := int64(0), int64(0)
	for round := range 200 {
		for range 100 {
			in.buf = append(in.buf, &pending{msg: kafka.Message{Offset: next}})
			next++
		}
		for range 99 { // one more record stays buffered every round
			if got := in.pop().msg.Offset; got != want {
				t.Fatalf("round %d: popped offset %d, want %d", round, got, want)
			}
			want++
		}
	}
	if in.buffered() != 200 {
		t.Fatalf("buffered %d, want 200", in.buffered())
	}
	if len(in.buf) > 2*1024+200 {
		t.Errorf("buffer length %d for 200 buffered records: it grows without bound", len(in.buf))
	}
	for in.buffered() > 0 {
		if got := in.pop().msg.Offset; got != want {
			t.Fatalf("popped offset %d, want %d", got, want)
		}
		want++
	}
}
