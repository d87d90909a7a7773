package pipeline

import (
	"errors"
	"maps"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

func TestChangelogCodec(t *testing.T) {
	st := operators.MemberState{Clock: 1_700_000_000, Enrolled: 1_600_000_000, Due: 1_700_086_400, Region: "north"}
	marks := []changelogMark{{id: "ev-1", expires: 1_700_600_000}, {id: "", expires: -5}, {id: "ev-3", expires: 0}}
	v := appendChangelogMember(nil, marks, st.AppendEncode(nil))
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

// TestRestoreEndings: what a restore makes of how a changelog ends.
func TestRestoreEndings(t *testing.T) {
	offs := appendChangelogOffsets(nil, map[string]int64{"in": 7})
	st := operators.MemberState{Clock: 1_700_000_000, Enrolled: 1_600_000_000}
	member := appendChangelogMember(nil, []changelogMark{{id: "e1", expires: 1 << 40}}, st.AppendEncode(nil))
	seed := []byte{changelogVersion}
	for _, tc := range []struct {
		name    string
		records [][2][]byte // key, value
		want    map[string]int64
		wantErr error
	}{
		{"batches", [][2][]byte{{[]byte("m/A"), member}, {[]byte("o"), offs}}, map[string]int64{"in": 7}, nil},
		{"first batch cut short", [][2][]byte{{[]byte("m/A"), member}}, map[string]int64{}, nil},
		{"a later batch cut short", [][2][]byte{{[]byte("m/A"), member}, {[]byte("o"), offs}, {[]byte("m/B"), member}}, map[string]int64{"in": 7}, nil},
		{"a seed", [][2][]byte{{[]byte("s"), seed}, {[]byte("m/A"), member}, {[]byte("o"), offs}}, map[string]int64{"in": 7}, nil},
		{"a seed cut short", [][2][]byte{{[]byte("s"), seed}, {[]byte("m/A"), member}}, nil, errSeedInterrupted},
		{"a seed cut short after batches", [][2][]byte{{[]byte("o"), offs}, {[]byte("s"), seed}, {[]byte("m/A"), member}}, nil, errSeedInterrupted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := state.DefaultOptions(t.TempDir())
			opts.MemoryBudget, opts.GCInterval = 32<<20, 0
			st, err := state.Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ld, err := st.Partition(0).NewLoader(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer ld.Abort()
			w := &worker{}
			var rs restoreState
			for i, r := range tc.records {
				if err := w.restoreRecord(ld, &kafka.Message{Key: r[0], Value: r[1], Offset: int64(i)}, &rs); err != nil {
					t.Fatal(err)
				}
			}
			got, err := rs.result()
			if !errors.Is(err, tc.wantErr) || !maps.Equal(got, tc.want) || (tc.want != nil && got == nil) {
				t.Errorf("result() = %v, %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	var rs restoreState
	if err := (&worker{}).restoreRecord(nil, &kafka.Message{Key: []byte("x/odd")}, &rs); !errors.Is(err, errChangelogCorrupt) {
		t.Errorf("unknown key: %v, want errChangelogCorrupt", err)
	}
}
