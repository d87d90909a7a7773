package state

import (
	"bytes"
	"reflect"
	"slices"
	"testing"
)

func TestKeysSort(t *testing.T) {
	tests := []struct {
		name string
		keys [][]byte // in the intended order
	}{
		{"timers by due then member", [][]byte{
			timerKey(nil, 3, -5, "Z"),
			timerKey(nil, 3, 0, "Z"),
			timerKey(nil, 3, 1, "Z"),
			timerKey(nil, 3, 255, "A"),
			timerKey(nil, 3, 256, "A"),
			timerKey(nil, 3, 1_700_000_000, "A"),
			timerKey(nil, 3, 1_700_000_000, "B"),
			timerKey(nil, 3, 1_700_000_001, "A"),
			timerKey(nil, 3, 1<<40, "A"),
		}},
		{"outbox by seq", [][]byte{
			outboxKey(nil, 3, 1), outboxKey(nil, 3, 2), outboxKey(nil, 3, 255),
			outboxKey(nil, 3, 256), outboxKey(nil, 3, 1<<32), outboxKey(nil, 3, 1<<56+1),
		}},
		{"timer bound between dues", [][]byte{
			timerKey(nil, 3, 99, "ZZZZ"), timerBound(nil, 3, 100), timerKey(nil, 3, 100, ""), timerKey(nil, 3, 100, "A"),
		}},
		{"partitions do not nest", [][]byte{
			memberKey(nil, 1, "zzz"), afterPrefix(appendPrefix(nil, kindMember, 1)), memberKey(nil, 10, ""), memberKey(nil, 2, ""),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Clone(tt.keys)
			slices.SortFunc(got, bytes.Compare)
			if !reflect.DeepEqual(got, tt.keys) {
				t.Errorf("sorted:\n%q\nwant:\n%q", got, tt.keys)
			}
		})
	}
}

func TestKeysLayout(t *testing.T) {
	tests := []struct {
		got, want []byte
	}{
		{memberKey(nil, 7, "M1"), []byte("m/7/M1")},
		{offsetKey(nil, 12, "churnflow.bookings"), []byte("o/12/churnflow.bookings")},
		{dedupKey(nil, 0, "bk-1"), []byte("d/0/bk-1")},
		{outboxKey(nil, 7, 258), []byte("x/7/\x00\x00\x00\x00\x00\x00\x01\x02")},
		{timerKey(nil, 7, 258, "M1"), []byte("t/7/\x80\x00\x00\x00\x00\x00\x01\x02/M1")},
		{seqKey(nil, 7), []byte("q/7/next")},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("key %q, want %q", tt.got, tt.want)
		}
		p, ok := parsePartition(tt.got)
		if !ok || (p != 7 && p != 12 && p != 0) {
			t.Errorf("parsePartition(%q) = %d, %v", tt.got, p, ok)
		}
	}
	due, member, ok := parseTimer(timerKey(nil, 7, 1_700_000_123, "M42")[len("t/7/"):])
	if !ok || due != 1_700_000_123 || string(member) != "M42" {
		t.Errorf("parseTimer = %d %q %v", due, member, ok)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []OutboxRecord{
		{Topic: "churnflow.dlq"},
		{Topic: "churnflow.alerts.dormancy", Key: []byte("M1"), Value: []byte(`{"a":1}`)},
		{Topic: "t", Key: []byte("k"), Value: []byte("v"), Headers: map[string]string{"alert_id": "dormancy:M1:2026-01-01", "b": "", "": "x"}},
	}
	for _, r := range tests {
		enc := appendRecord(nil, &r)
		got, err := decodeRecord(enc)
		if err != nil {
			t.Fatalf("decode %+v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip %+v, got %+v", r, got)
		}
		if !bytes.Equal(appendRecord(nil, &got), enc) {
			t.Errorf("encoding of %+v not deterministic", r)
		}
		for i := range len(enc) - 1 {
			if _, err := decodeRecord(enc[:i]); err == nil {
				t.Errorf("truncated at %d: no error", i)
			}
		}
	}
}
