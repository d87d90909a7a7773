package operators

import (
	"bufio"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/churnflow/churnflow/model"
)

// TestAlertAppendJSONMatchesWire: the hand-written encoder writes the same
// document as encoding/json over AlertJSON, for every alert the golden
// scenario produces (with and without a model, so p_alive is covered).
func TestAlertAppendJSONMatchesWire(t *testing.T) {
	for _, withModel := range []int{0, 1, 2} {
		cfg := DefaultConfig()
		switch withModel {
		case 1:
			cfg.Model = &BGNBDParams{R: 0.24, Alpha: 4.41, A: 0.79, B: 2.43, Unit: "week"}
		case 2:
			cfg.Fitted = testFitted(model.NameMBGNBD)
		}
		g, err := NewEngine(cfg)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open("testdata/golden/events.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		d := NewDecoder(cfg.TierNames())
		states := map[MemberID]*MemberState{}
		var alerts []Alert
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e Event
			if err := d.Decode(sc.Bytes(), &e); err != nil {
				continue
			}
			s := states[e.MemberID]
			if s == nil {
				s = &MemberState{}
				states[MemberID(string(e.MemberID))] = s
			}
			alerts, _ = g.Apply(s, &e, alerts)
		}
		for id, s := range states {
			alerts = g.Advance(s, id, 1900000000, alerts)
		}
		if len(alerts) < 20 {
			t.Fatalf("only %d alerts", len(alerts))
		}
		types := map[AlertType]bool{}
		for i := range alerts {
			a := &alerts[i]
			types[a.Type] = true
			var got, want any
			if err := json.Unmarshal(a.AppendJSON(nil, a.TriggeredAt+5), &got); err != nil {
				t.Fatalf("AppendJSON gave invalid JSON for %s: %v", a.ID, err)
			}
			ref, _ := json.Marshal(a.Wire(a.TriggeredAt + 5))
			if err := json.Unmarshal(ref, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s:\n hand:  %s\n json:  %s", a.ID, a.AppendJSON(nil, a.TriggeredAt+5), ref)
			}
		}
		if len(types) < 6 {
			t.Errorf("only %d alert types covered", len(types))
		}
	}
}

func TestAppendJSONStringAndFloat(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "tab\there\nnl\r\x01\x1f", "华北 north", "bad \xff utf8", "\u2028", "<&>"} {
		var back string
		if err := json.Unmarshal(appendJSONString(nil, s), &back); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		var want string
		ref, _ := json.Marshal(s)
		json.Unmarshal(ref, &want)
		if back != want {
			t.Errorf("%q: got %q, want %q", s, back, want)
		}
	}
	for _, f := range []float64{0, 1, -2.5, 1e-7, 123456789012, 1e21, 5230.12, 0.83} {
		ref, _ := json.Marshal(f)
		if got := string(appendJSONFloat(nil, f)); got != string(ref) {
			t.Errorf("%v: got %s, want %s", f, got, ref)
		}
	}
}
