package operators_test

// Fuzz tests of the two codecs on the hot path: the JSON event decoder and
// the binary member-state encoding. Seeds come from f.Add below and from the
// corpus files checked in under testdata/fuzz/<FuzzName>/ (Go's "go test
// fuzz v1" format); plain `go test` runs every seed, and
//
//	go test ./operators -run XXX -fuzz FuzzDecode -fuzztime 60s
//
// explores further. A crasher the fuzzer finds is written to
// testdata/fuzz/<FuzzName>/; keep it there once understood, as a regression
// test.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/churnflow/churnflow/operators"
)

// FuzzDecode checks that Decoder.Decode never panics, that every error is a
// *ValidationError with a reason, and that an accepted event survives
// Event.AppendJSON and a second Decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"bk-000123","type":"booking","member_id":"M0042","occurred_at":"2026-03-01T10:00:00Z","amount":420.5,"currency":"CNY","distance_km":1250,"segments":1,"discount":0.85,"product":"flight","channel":"app","origin":"PEK","destination":"JFK","trip_start":"2026-04-10","trip_end":"2026-04-17"}`,
		`{"event_id":"ac-77","type":"login","member_id":"M0042","occurred_at":"2026-03-02T08:00:00Z"}`,
		`{"event_id":"en-9","type":"enrolment","member_id":"M0042","occurred_at":"2019-05-01T09:00:00Z","tier":"base","region":"north","account_manager":"A-17"}`,
		`{"event_id":"cx-1","type":"cancellation","member_id":"M1","occurred_at":"2026-03-01T18:00:00.5+08:00","booking_id":"bk-1"}`,
		`{"event_id":"tc-1","type":"tier_change","member_id":"M1","occurred_at":"2026-03-01t10:00:00z","tier":"gold","points":1e15,"points_balance":0}`,
		`{"event_id":"e\"\\\u00e9","type":"x","member_id":"华北","occurred_at":"0001-01-01T00:00:00-23:59","amount":5e-324,"discount":1.5}`,
		`{"event_id":"e","type":"booking","member_id":"m","occurred_at":"2026-03-01T10:00:00Z","amount":01,"segments":1.0}`,
		`[1,2,3]`,
		``,
	} {
		f.Add([]byte(s))
	}
	// Every schema sample, valid or not, is a good seed too.
	paths, _ := filepath.Glob("testdata/schema/events/*/*.json")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := operators.NewDecoder(nil)
		var e1 operators.Event
		err := d.Decode(data, &e1)
		if err != nil {
			var ve *operators.ValidationError
			if !errors.As(err, &ve) || ve.Reason == "" {
				t.Fatalf("error %v (%T) is not a *ValidationError with a reason", err, err)
			}
			return
		}
		if e1.ID == "" || e1.MemberID == "" || e1.TypeName == "" {
			t.Fatalf("accepted an event without identity: %+v", e1)
		}
		if e1.Type != operators.ParseEventType(e1.TypeName) {
			t.Fatalf("Type %v does not match TypeName %q", e1.Type, e1.TypeName)
		}
		js := e1.AppendJSON(nil)
		var e2 operators.Event
		if err := d.Decode(js, &e2); err != nil {
			t.Fatalf("re-decoding AppendJSON output failed: %v\ninput:  %q\noutput: %s", err, data, js)
		}
		if e1 != e2 {
			t.Fatalf("round trip changed the event\ninput:  %q\noutput: %s\nfirst:  %+v\nsecond: %+v", data, js, e1, e2)
		}
	})
}

// FuzzStateCodec checks that DecodeState never panics, that its errors wrap
// ErrStateCorrupt or ErrStateVersion, and that it accepts only canonical
// encodings: whatever it accepts re-encodes to exactly the same bytes, and
// decoding into a state that already holds data gives the same result.
func FuzzStateCodec(f *testing.F) {
	for _, b := range stateSeeds(f) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s operators.MemberState
		err := operators.DecodeState(data, &s)
		if err != nil {
			if !errors.Is(err, operators.ErrStateCorrupt) && !errors.Is(err, operators.ErrStateVersion) {
				t.Fatalf("error %v wraps neither ErrStateCorrupt nor ErrStateVersion", err)
			}
			return
		}
		got := s.AppendEncode(nil)
		if !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs\nin:  %x\nout: %x\nstate: %+v", data, got, s)
		}
		// Decoding into a used state must not leave anything behind.
		used := usedState()
		if err := operators.DecodeState(data, &used); err != nil {
			t.Fatalf("decoding into a used state failed: %v", err)
		}
		if !reflect.DeepEqual(used, s) {
			t.Fatalf("decoding into a used state differs\nfresh: %+v\nused:  %+v", s, used)
		}
	})
}

// usedState returns a fresh state with history and trips, to decode into.
func usedState() operators.MemberState {
	s := operators.MemberState{Clock: 99, Region: "old", AccountManager: "old", Tier: 3}
	for i := range 40 {
		s.History = append(s.History, operators.Booking{IDHash: 7, Revenue: 7, Day: int32(i), Km: 7, Segments: 7, Discount: 7, Product: operators.ProductHotel})
	}
	for i := range 40 {
		s.Trips = append(s.Trips, operators.Trip{Deadline: int64(i + 1), BookingHash: 7, Ref: "old", StartDay: 7, EndDay: 8, DestHash: 7, HasTripID: true, HasDates: true})
	}
	return s
}

// stateSeeds returns encodings of states the engine produces from events
// (after every event and after the timers), plus the golden encoding.
func stateSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	if b, err := os.ReadFile("testdata/state_v1.golden"); err == nil {
		if raw, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil {
			out = append(out, raw)
		}
	}
	cfg := operators.DefaultConfig()
	cfg.Model = &operators.BGNBDParams{R: 0.25, Alpha: 4, A: 0.8, B: 2.4, Unit: "week"}
	g, err := operators.NewEngine(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	d := operators.NewDecoder(nil)
	for _, sc := range alertScenarios() {
		var s operators.MemberState
		var id operators.MemberID
		for _, js := range append(sc.events, sc.after...) {
			var e operators.Event
			if err := d.Decode([]byte(js), &e); err != nil {
				tb.Fatalf("seed event %s: %v", js, err)
			}
			id = e.MemberID
			g.Apply(&s, &e, nil)
			out = append(out, s.AppendEncode(nil))
		}
		g.Advance(&s, id, s.Clock+400*86400, nil)
		out = append(out, s.AppendEncode(nil))
	}
	return out
}

// FuzzDecodeJSONGrammar checks the decoder's hand-written JSON scanner
// against encoding/json: a record is "not valid JSON" for churnflow exactly
// when json.Valid refuses it (a field churnflow reads appearing twice is
// the one, deliberate, difference), and "not a JSON object" only for valid
// JSON that is not an object.
func FuzzDecodeJSONGrammar(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"e","type":"login","member_id":"M","occurred_at":"2026-01-01T00:00:00Z"}`,
		`{"a":[1,-2.5e3,{"b":null}],"c":"\u00e9\ud83d\ude00\ud800x","d":true}`,
		`[1,2]`, `"x"`, `{"amount":01}`, `{"amount":1.}`, `{"x":"\q"}`, `{"amount":-0.0e-0}`,
		` { } `, `{"event_id":"e","event_id":"f"}`, `{"k":1}x`, "{\"k\":\"\x01\"}",
	} {
		f.Add([]byte(s))
	}
	d := operators.NewDecoder(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		var e operators.Event
		err := d.Decode(data, &e)
		var ve *operators.ValidationError
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("error %v is not a *ValidationError", err)
		}
		if err != nil && ve.Reason == operators.ReasonOversize {
			return
		}
		valid := json.Valid(data)
		switch {
		case err != nil && ve.Reason == operators.ReasonInvalidJSON && ve.Problem == "not a JSON object":
			if !valid || bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
				t.Fatalf("%q: said not an object; json.Valid=%v", data, valid)
			}
		case err != nil && ve.Reason == operators.ReasonInvalidJSON && ve.Problem == "appears more than once":
			if !valid {
				t.Fatalf("%q: said duplicate field, but json.Valid refuses it", data)
			}
		case err != nil && ve.Reason == operators.ReasonInvalidJSON:
			if valid {
				t.Fatalf("%q: said %v, but json.Valid accepts it", data, err)
			}
		default:
			if !valid {
				t.Fatalf("%q: decoder got past the grammar (%v), but json.Valid refuses it", data, err)
			}
		}
	})
}
