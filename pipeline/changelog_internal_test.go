package pipeline

import (
	"errors"
	"maps"
	"testing"

	"github.com/churnflow/churnflow/operators"
)

func TestChangelogCodec(t *testing.T) {
	st := operators.MemberState{Clock: 1_700_000_000, Enrolled: 1_600_000_000, Due: 1_700_086_400, Region: "north"}
	marks := []changelogMark{{id: "ev-1", expires: 1_700_600_000}, {id: "", expires: -5}, {id: "ev-3", expires: 0}}
	v := appendChangelogMember(nil, marks, &st)
	var got []changelogMark
	enc, err := decodeChangelogMember(v, func(id []byte, exp int64) { got = append(got, changelogMark{string(id), exp}) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(marks) {
		t.Fatalf("marks %v, want %v", got, marks)
	}
	for i := range marks {
		if got[i] != marks[i] {
			t.Errorf("mark %d: %v, want %v", i, got[i], marks[i])
		}
	}
	if string(enc) != string(st.AppendEncode(nil)) {
		t.Error("state encoding does not round-trip")
	}
	for n := range len(v) - len(enc) { // every cut inside the marks
		if _, err := decodeChangelogMember(v[:n], func([]byte, int64) {}); !errors.Is(err, errChangelogCorrupt) {
			t.Errorf("member value cut at %d: err %v, want errChangelogCorrupt", n, err)
		}
	}

	offs := map[string]int64{"churnflow.bookings": 12345, "churnflow.activity": 0}
	ov := appendChangelogOffsets(nil, offs)
	back, err := decodeChangelogOffsets(ov)
	if err != nil || !maps.Equal(back, offs) {
		t.Errorf("offsets %v (%v), want %v", back, err, offs)
	}
	for n := range len(ov) {
		if _, err := decodeChangelogOffsets(ov[:n]); !errors.Is(err, errChangelogCorrupt) {
			t.Errorf("offsets value cut at %d: err %v, want errChangelogCorrupt", n, err)
		}
	}
	if _, err := decodeChangelogOffsets(append([]byte{9}, ov[1:]...)); !errors.Is(err, errChangelogCorrupt) {
		t.Errorf("unknown version: err %v, want errChangelogCorrupt", err)
	}
}
