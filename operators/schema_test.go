package operators_test

// The JSON Schemas in docs/schemas are the contract for producers and
// consumers; operators.Decoder and operators.Alert.AppendJSON are what
// churnflow actually does. These tests keep the two in step.
//
// Event samples live in testdata/schema/events, one folder per expected
// outcome:
//
//	valid/                both the decoder and the schema accept
//	invalid/              both reject
//	go_only_invalid/      the decoder rejects and the schema accepts, because
//	                      JSON Schema cannot express the check: leap years,
//	                      trip_end >= trip_start, byte (not character)
//	                      lengths, UTF-8 validity, the configured tier list,
//	                      and duplicate properties (the decoder rejects a
//	                      field it reads appearing twice; the schema
//	                      validator sees only the last copy)
//	schema_only_invalid/  the schema side rejects and the decoder accepts:
//	                      numbers that round to a limit in float64
//
// Every file in the last two folders says why in a "_comment" property. A
// sample in one of them that starts to agree (a fixed decoder, a sharper
// schema) fails the test: move it to valid/ or invalid/.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/churnflow/churnflow/operators"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const (
	eventSchemaPath = "../docs/schemas/event.schema.json"
	alertSchemaPath = "../docs/schemas/alert.schema.json"
	eventSamplesDir = "testdata/schema/events"
)

// compileSchema compiles one schema file with the library's defaults
// (draft 2020-12; "format" is an annotation, not an assertion).
func compileSchema(t testing.TB, path string) *jsonschema.Schema {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	sch, err := jsonschema.NewCompiler().Compile(abs)
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	return sch
}

// schemaCheck validates raw bytes against sch. A document that is not JSON
// fails too: a producer's JSON library would not have written it.
func schemaCheck(sch *jsonschema.Schema, data []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(v)
}

// testDecoder decodes with the default tier ladder, as the pipeline does.
func testDecoder() *operators.Decoder {
	cfg := operators.DefaultConfig()
	return operators.NewDecoder(cfg.TierNames())
}

func goCheck(d *operators.Decoder, data []byte) error {
	var e operators.Event
	return d.Decode(data, &e)
}

func samples(t *testing.T, folder string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(eventSamplesDir, folder, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func verdict(err error) string {
	if err == nil {
		return "accepts"
	}
	return "rejects (" + oneLine(err.Error()) + ")"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

var commentRE = regexp.MustCompile(`"_comment"\s*:\s*"((?:[^"\\]|\\.)*)"`)

// why returns a sample's "_comment", read textually so that it works for
// samples that are not JSON.
func why(data []byte) string {
	if m := commentRE.FindSubmatch(data); m != nil {
		return string(m[1])
	}
	return "(no _comment)"
}

// TestEventSchemaAgreesWithDecoder checks that for every sample in valid/
// and invalid/ the decoder and the schema give the same verdict, and the
// expected one.
func TestEventSchemaAgreesWithDecoder(t *testing.T) {
	sch := compileSchema(t, eventSchemaPath)
	d := testDecoder()
	minimum := map[string]int{"valid": 10, "invalid": 25}
	var disagreements []string
	for _, folder := range []string{"valid", "invalid"} {
		files := samples(t, folder)
		if len(files) < minimum[folder] {
			t.Errorf("%s: %d samples, want at least %d", folder, len(files), minimum[folder])
		}
		wantOK := folder == "valid"
		for _, name := range sortedKeys(files) {
			data := files[name]
			t.Run(folder+"/"+name, func(t *testing.T) {
				goErr, schErr := goCheck(d, data), schemaCheck(sch, data)
				if (goErr == nil) != (schErr == nil) {
					line := fmt.Sprintf("%s/%s: decoder %s, schema %s", folder, name, verdict(goErr), verdict(schErr))
					disagreements = append(disagreements, line)
					t.Error("disagreement: " + line)
					return
				}
				if (goErr == nil) != wantOK {
					t.Errorf("both %s, but the sample is in %s/", verdict(goErr), folder)
				}
			})
		}
	}
	if len(disagreements) > 0 {
		t.Errorf("decoder and event.schema.json disagree on %d samples:\n\t%s", len(disagreements), strings.Join(disagreements, "\n\t"))
	}
}

// TestEventSchemaKnownGaps pins the samples on which the decoder and the
// schema disagree on purpose (go_only_invalid/) or because of a known
// decoder bug (schema_only_invalid/). It fails when one of them starts to
// agree, so that the sample moves to valid/ or invalid/.
func TestEventSchemaKnownGaps(t *testing.T) {
	sch := compileSchema(t, eventSchemaPath)
	d := testDecoder()

	goOnly := samples(t, "go_only_invalid")
	if len(goOnly) == 0 {
		t.Error("no go_only_invalid samples")
	}
	for _, name := range sortedKeys(goOnly) {
		data := goOnly[name]
		t.Run("go_only_invalid/"+name, func(t *testing.T) {
			if err := goCheck(d, data); err == nil {
				t.Errorf("decoder accepts a sample it must reject (%s)", why(data))
			} else {
				t.Logf("decoder: %v", err)
			}
			if err := schemaCheck(sch, data); err != nil {
				t.Errorf("schema now rejects it too (%s): move the sample to invalid/", oneLine(err.Error()))
			}
		})
	}

	// Oversize: built here rather than checked in as a 64 KiB file. The
	// schema cannot limit the size of a whole document.
	t.Run("go_only_invalid/oversize", func(t *testing.T) {
		pad := strings.Repeat("x", operators.DefaultMaxEventBytes)
		data := []byte(`{"event_id":"e-1","type":"login","member_id":"M1","occurred_at":"2026-03-01T10:00:00Z","padding":"` + pad + `"}`)
		err := goCheck(d, data)
		if operators.ReasonOf(err) != operators.ReasonOversize {
			t.Errorf("decoder: %v, want reason %s", err, operators.ReasonOversize)
		}
		if err := schemaCheck(sch, data); err != nil {
			t.Errorf("schema rejects: %v", err)
		}
	})

	schemaOnly := samples(t, "schema_only_invalid")
	for _, name := range sortedKeys(schemaOnly) {
		data := schemaOnly[name]
		t.Run("schema_only_invalid/"+name, func(t *testing.T) {
			if err := schemaCheck(sch, data); err == nil {
				t.Errorf("schema accepts a sample it must reject (%s)", why(data))
			}
			if err := goCheck(d, data); err != nil {
				t.Errorf("decoder now rejects it (%v): move the sample to invalid/", err)
				return
			}
			t.Logf("known disagreement, decoder accepts: %s", why(data))
		})
	}
}

// TestEventSchemaExamples checks the examples embedded in the schema: each
// must pass the schema and the decoder.
func TestEventSchemaExamples(t *testing.T) {
	raw, err := os.ReadFile(eventSchemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Examples) == 0 {
		t.Fatal("event.schema.json has no examples")
	}
	sch := compileSchema(t, eventSchemaPath)
	d := testDecoder()
	for i, ex := range doc.Examples {
		if err := schemaCheck(sch, ex); err != nil {
			t.Errorf("example %d: schema: %v", i, err)
		}
		if err := goCheck(d, ex); err != nil {
			t.Errorf("example %d: decoder: %v", i, err)
		}
	}
}

// alertScenario is one member's event history; the alerts it causes are
// collected up to until.
type alertScenario struct {
	name   string
	events []string // JSON events, in time order
	until  string   // RFC 3339: Advance runs up to here after the events
	after  []string // events applied after Advance (e.g. to reactivate)
}

func flightJSON(id, member, at string, km float64, extra string) string {
	return fmt.Sprintf(`{"event_id":%q,"type":"booking","member_id":%q,"occurred_at":%q,"product":"flight","distance_km":%g,"segments":2,"amount":800,"currency":"CNY","discount":0.95%s}`, id, member, at, km, extra)
}

func alertScenarios() []alertScenario {
	// A gold frequent flyer: monthly premium flights for 18 months, then
	// silence. Dormancy, retention, keep-tier nudges and segment changes
	// follow; a login two years later reactivates the member.
	var goldFlyer []string
	goldFlyer = append(goldFlyer, `{"event_id":"en-1","type":"enrolment","member_id":"M-gold","occurred_at":"2024-01-05T09:00:00Z","tier":"gold","region":"north","account_manager":"A-17"}`)
	for i := range 18 {
		y, m := 2024+i/12, 1+i%12
		goldFlyer = append(goldFlyer, flightJSON(fmt.Sprintf("bk-g%d", i), "M-gold", fmt.Sprintf("%d-%02d-10T08:00:00Z", y, m), 3000, `,"trip_id":"T`+fmt.Sprint(i)+`"`))
		goldFlyer = append(goldFlyer, fmt.Sprintf(`{"event_id":"ht-g%d","type":"booking","member_id":"M-gold","occurred_at":"%d-%02d-10T09:00:00Z","product":"hotel","trip_id":"T%d","amount":300}`, i, y, m, i))
	}

	// A base member close to silver at the end of 2026: an upgrade nudge.
	almost := []string{`{"event_id":"en-2","type":"enrolment","member_id":"M-almost","occurred_at":"2025-06-01T09:00:00Z","tier":"base","region":"south"}`}
	for i := range 7 {
		almost = append(almost, flightJSON(fmt.Sprintf("bk-a%d", i), "M-almost", fmt.Sprintf("2026-%02d-15T08:00:00Z", 3+i), 5000, ""))
	}

	return []alertScenario{
		{name: "gold flyer", events: goldFlyer, until: "2027-06-01T00:00:00Z",
			after: []string{`{"event_id":"li-1","type":"login","member_id":"M-gold","occurred_at":"2027-06-02T00:00:00Z"}`}},
		{name: "almost silver", events: almost, until: "2027-03-01T00:00:00Z"},
		{name: "points collector", until: "2026-12-01T00:00:00Z", events: []string{
			`{"event_id":"en-3","type":"enrolment","member_id":"M-points","occurred_at":"2026-01-02T09:00:00Z"}`,
			`{"event_id":"pe-1","type":"points_earned","member_id":"M-points","occurred_at":"2026-02-02T09:00:00Z","points":9500}`,
		}},
		{name: "flight without hotel", until: "2026-06-01T00:00:00Z", events: []string{
			flightJSON("bk-t1", "M-trip", "2026-03-01T10:00:00Z", 1250, `,"trip_id":"TR-88","destination":"JFK","trip_start":"2026-04-10","trip_end":"2026-04-17"`),
			flightJSON("bk-t2", "M-trip", "2026-03-02T10:00:00Z", 900, `,"destination":"PVG"`),
		}},
		{name: "cancelled booking", until: "2026-09-01T00:00:00Z", events: []string{
			flightJSON("bk-c1", "M-cancel", "2026-03-01T10:00:00Z", 1250, ""),
			`{"event_id":"cx-1","type":"cancellation","member_id":"M-cancel","occurred_at":"2026-03-01T11:00:00Z","booking_id":"bk-c1"}`,
		}},
		{name: "erased member", until: "2026-09-01T00:00:00Z", events: []string{
			flightJSON("bk-d1", "M-erased", "2026-03-01T10:00:00Z", 1250, ""),
			`{"event_id":"del-1","type":"member_deleted","member_id":"M-erased","occurred_at":"2026-03-02T10:00:00Z"}`,
		}},
	}
}

// runAlertScenario applies the scenario's events and timers and returns the
// alerts.
func runAlertScenario(t *testing.T, g *operators.Engine, sc alertScenario) []operators.Alert {
	t.Helper()
	d := operators.NewDecoder(g.Config().TierNames())
	var s operators.MemberState
	var out []operators.Alert
	apply := func(js string) operators.MemberID {
		var e operators.Event
		if err := d.Decode([]byte(js), &e); err != nil {
			t.Fatalf("%s: decode %s: %v", sc.name, js, err)
		}
		out, _ = g.Apply(&s, &e, out)
		return e.MemberID
	}
	var id operators.MemberID
	for _, js := range sc.events {
		id = apply(js)
	}
	var until operators.Event
	if err := d.Decode([]byte(`{"event_id":"x","type":"x","member_id":"x","occurred_at":"`+sc.until+`"}`), &until); err != nil {
		t.Fatal(err)
	}
	out = g.Advance(&s, id, until.OccurredAt, out)
	for _, js := range sc.after {
		apply(js)
	}
	return out
}

// TestAlertsMatchSchema runs members through the engine, with and without a
// BG/NBD model, and validates every alert's JSON against alert.schema.json.
// It also requires every alert type to appear, so the schema's
// type-specific rules are all exercised.
func TestAlertsMatchSchema(t *testing.T) {
	sch := compileSchema(t, alertSchemaPath)
	withModel := operators.DefaultConfig()
	withModel.Model = &operators.BGNBDParams{R: 0.25, Alpha: 4, A: 0.8, B: 2.4, Unit: "week"}
	withFitted := operators.DefaultConfig()
	withFitted.Fitted = benchFitted()
	configs := []struct {
		name string
		cfg  operators.Config
	}{
		{"default", operators.DefaultConfig()},
		{"with model", withModel},
		{"with fitted model", withFitted},
	}
	seen := map[string]int{}
	withPAlive, withCLV := 0, 0
	for _, c := range configs {
		g, err := operators.NewEngine(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, sc := range alertScenarios() {
			for _, a := range runAlertScenario(t, g, sc) {
				b := a.AppendJSON(nil, a.TriggeredAt+2)
				seen[a.Type.String()]++
				if bytes.Contains(b, []byte(`"p_alive":`)) {
					withPAlive++
				}
				if bytes.Contains(b, []byte(`"clv":`)) && bytes.Contains(b, []byte(`"expected_bookings_90d":`)) {
					withCLV++
				}
				if err := schemaCheck(sch, b); err != nil {
					t.Errorf("%s, %s: alert does not match alert.schema.json:\n%s\n%v", c.name, sc.name, b, err)
				}
			}
		}
	}
	for _, at := range operators.AlertTypes() {
		if seen[at.String()] == 0 {
			t.Errorf("no %s alert: the scenarios no longer cover every alert type", at)
		}
	}
	if withPAlive == 0 {
		t.Error("no alert carried p_alive")
	}
	if withCLV == 0 {
		t.Error("no alert carried clv and expected_bookings_90d")
	}
	t.Logf("alerts validated by type: %v (%d with p_alive, %d with clv)", seen, withPAlive, withCLV)
}

// TestAlertSchemaRejectsWrongAlerts makes sure the schema is not vacuous:
// an engine alert, altered in one way at a time, must fail it.
func TestAlertSchemaRejectsWrongAlerts(t *testing.T) {
	sch := compileSchema(t, alertSchemaPath)
	good := `{"alert_id":"retention:M1:2026-06-01","type":"retention","member_id":"M1","triggered_at":"2026-06-01T00:00:00Z","emitted_at":"2026-06-01T00:00:02Z","reason":"r","reasons":["overdue"],"severity":"high","member":{"tier":"gold","segment":"important_retain","stage":"decline","dormant":false,"lrfmc":{"L":10,"R":null,"F":0,"M":0,"C":null},"value_score":0.5},"value_at_risk":12.5,"schema_version":1}`
	if err := schemaCheck(sch, []byte(good)); err != nil {
		t.Fatalf("baseline alert rejected: %v", err)
	}
	for _, c := range []struct{ name, from, to string }{
		{"unknown type", `"type":"retention"`, `"type":"churn"`},
		{"bad severity", `"severity":"high"`, `"severity":"critical"`},
		{"schema version 2", `"schema_version":1`, `"schema_version":2`},
		{"unknown segment", `"segment":"important_retain"`, `"segment":"vip"`},
		{"unknown stage", `"stage":"decline"`, `"stage":"churned"`},
		{"non-UTC time", `"triggered_at":"2026-06-01T00:00:00Z"`, `"triggered_at":"2026-06-01T08:00:00+08:00"`},
		{"L null", `"L":10`, `"L":null`},
		{"C above 1.5", `"C":null`, `"C":1.6`},
		{"retention without value_at_risk", `,"value_at_risk":12.5`, ``},
		{"unknown reason code", `"reasons":["overdue"]`, `"reasons":["bored"]`},
		{"undocumented property", `"schema_version":1`, `"schema_version":1,"extra":true`},
		{"value_at_risk on dormancy", `"type":"retention"`, `"type":"dormancy"`},
		{"negative clv", `"value_score":0.5`, `"value_score":0.5,"clv":-1`},
		{"expected bookings as text", `"value_score":0.5`, `"value_score":0.5,"expected_bookings_90d":"2"`},
	} {
		bad := strings.Replace(good, c.from, c.to, 1)
		if bad == good {
			t.Fatalf("%s: replacement did not apply", c.name)
		}
		if err := schemaCheck(sch, []byte(bad)); err == nil {
			t.Errorf("%s: schema accepts %s", c.name, bad)
		}
	}
}
