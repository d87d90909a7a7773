package operators

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// rewrite regenerates the golden file of the CURRENT state encoding version:
//
//	go test ./operators -run TestStateGolden -rewrite
//
// Never rewrite the golden file of a version that has been released: member
// states written by that version sit in Badger stores and changelog topics,
// and every later build must still decode them. The file pins those bytes.
// When MemberState grows, bump stateVersion, add goldenStates entry
// {version 2, "state_v2.golden", ...} (rewrite writes it), and keep the v1
// entry and DecodeState's v1 branch: the v1 file must go on decoding to the
// v1 state (with the new fields at their zero or documented defaults).
//
// The flag is shared with the other golden tests of this package
// (golden_test.go looks it up rather than defining it again).
var rewrite = flag.Bool("rewrite", false, "rewrite golden files from the current code (member state: only the current encoding version's file)")

// goldenState is one pinned encoding version.
type goldenState struct {
	version byte
	file    string
	state   func() MemberState
}

var goldenStates = []goldenState{
	{version: 1, file: "state_v1.golden", state: goldenStateV1},
}

// goldenStateV1 is a fixed state with every field set to a distinct
// non-zero value, so that swapping, dropping or resizing any field of the
// encoding changes the bytes. It is built by hand rather than by running
// the engine: rule changes must not move the golden bytes, only encoding
// changes may. Every flag is set, which the engine never does (a tombstone
// holds nothing else), to pin every flag bit.
func goldenStateV1() MemberState {
	const clock = 1772359200 // 2026-03-01T10:00:00Z
	return MemberState{
		Clock:         clock,
		Due:           clock + 30*secondsPerDay, // after the clock: positive delta
		Enrolled:      1556701200,               // 2019-05-01T09:00:00Z
		FirstBooking:  1557000000,
		LastBooking:   1771000000,
		LastActivity:  1772000000,
		DormantSince:  1771500000,
		RetentionAt:   1770000000,
		DeletedAt:     clock - 1,
		PointsBalance: 123456,
		Bookings:      42,
		BookingDays:   40,
		UpgradeNudged: 2026 + 1,
		KeepNudged:    2025 + 1,
		UpgradeTarget: 3,
		Tier:          2,
		Segment:       SegmentImportantWinBack,
		Stage:         StageDecline,
		flags:         1<<numStateFlags - 1,

		Region:         "华北 north",
		AccountManager: "A-17",
		History: []Booking{
			{IDHash: 0x0123456789abcdef, Revenue: 42050, Day: 20300, Sec: 36000, Km: 1250, Segments: 1, Discount: 85, Product: ProductFlight},
			{IDHash: 0xfedcba9876543210, Revenue: 30000, Day: 20300, Sec: 50400, Km: 3, Segments: 2, Discount: NoDiscount, Product: ProductHotel},
			{IDHash: 0x1111111111111111, Revenue: 1, Day: 20500, Sec: 86399, Km: 4000000000, Segments: 1000, Discount: 150, Product: ProductOther},
		},
		Trips: []Trip{
			{Deadline: clock + 6*3600, BookingHash: 0x0123456789abcdef, Ref: "TR-88", StartDay: 20553, EndDay: 20560, DestHash: 0x9e3779b9, HasTripID: true, HasDates: true},
			{Deadline: clock + 7*3600, BookingHash: 0x2222222222222222, Ref: "bk-000124", StartDay: 20554, EndDay: 20554, DestHash: 1, HasTripID: false, HasDates: true},
		},
	}
}

// TestStateGolden checks that the pinned state of each version decodes from
// its golden file to an equal state and, for the current version, that
// AppendEncode gives exactly the golden bytes.
func TestStateGolden(t *testing.T) {
	for _, g := range goldenStates {
		t.Run(g.file, func(t *testing.T) {
			path := filepath.Join("testdata", g.file)
			want := g.state()
			current := g.version == stateVersion
			if *rewrite && current {
				enc := want.AppendEncode(nil)
				if err := os.WriteFile(path, []byte(hex.EncodeToString(enc)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("rewrote %s", path)
			}
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -rewrite to create the current version's file)", err)
			}
			if bytes.Count(bytes.TrimRight(text, "\n"), []byte("\n")) != 0 {
				t.Fatalf("%s: want one line of hex", path)
			}
			golden, err := hex.DecodeString(strings.TrimSpace(string(text)))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if golden[0] != g.version {
				t.Fatalf("%s: version byte %d, want %d", path, golden[0], g.version)
			}
			if current {
				if got := want.AppendEncode(nil); !bytes.Equal(got, golden) {
					t.Errorf("AppendEncode differs from %s: the v%d encoding changed. A released version's encoding must not change: bump stateVersion and add a new golden file instead.\ngot:  %x\nwant: %x", path, g.version, got, golden)
				}
			}
			var got MemberState
			if err := DecodeState(golden, &got); err != nil {
				t.Fatalf("DecodeState(%s): %v", path, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DecodeState(%s) differs\ngot:  %+v\nwant: %+v", path, got, want)
			}
		})
	}
}

// TestStateGoldenIsFull fails when MemberState, Booking or Trip gains a
// field the golden state leaves at zero: the new field needs encoding, a new
// state version and a new golden file (see rewrite).
func TestStateGoldenIsFull(t *testing.T) {
	s := goldenStateV1()
	if s.flags != 1<<numStateFlags-1 {
		t.Errorf("golden flags %#x do not set every flag (%d flags)", s.flags, numStateFlags)
	}
	for _, z := range zeroFields(reflect.ValueOf(s), "MemberState") {
		t.Errorf("%s is zero in the golden state: a new field? Encode it, bump stateVersion and add a golden file", z)
	}
}

// zeroFields lists the fields of struct v that are zero. For a slice of
// structs, a field counts as set if any element sets it.
func zeroFields(v reflect.Value, path string) []string {
	var out []string
	for i := range v.NumField() {
		f, name := v.Field(i), path+"."+v.Type().Field(i).Name
		if f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct {
			if f.Len() == 0 {
				out = append(out, name)
				continue
			}
			elem := f.Type().Elem()
			for j := range elem.NumField() {
				set := false
				for k := range f.Len() {
					set = set || !f.Index(k).Field(j).IsZero()
				}
				if !set {
					out = append(out, fmt.Sprintf("%s[].%s", name, elem.Field(j).Name))
				}
			}
			continue
		}
		if f.IsZero() {
			out = append(out, name)
		}
	}
	return out
}
