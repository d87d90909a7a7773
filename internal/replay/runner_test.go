package replay

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/churnflow/churnflow/operators"
)

func testEngine(t testing.TB) *operators.Engine {
	t.Helper()
	g, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// runResult is what one replay produced.
type runResult struct {
	out, rejects []byte
	sum          *Summary
}

func replay(t testing.TB, cfg Config, input []byte) runResult {
	t.Helper()
	if cfg.Engine == nil {
		cfg.Engine = testEngine(t)
	}
	var out, rej bytes.Buffer
	sum, err := Run(t.Context(), cfg, bytes.NewReader(input), &out, &rej)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return runResult{out.Bytes(), rej.Bytes(), sum}
}

func sortedLines(b []byte) []string {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	slices.Sort(lines)
	return lines
}

func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s: %d lines, want %d", what, len(got), len(want))
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("%s: first difference at sorted line %d:\n got %s\nwant %s", what, i, g, w)
		}
	}
}

var genCache = map[uint64][]byte{}

func generated(seed uint64, n int) []byte {
	if b, ok := genCache[seed]; ok {
		return b
	}
	b := joinLines(genInput(seed, n))
	genCache[seed] = b
	return b
}

// The alerts must not depend on how the sorted events are batched.
func TestAlertsDoNotDependOnBatching(t *testing.T) {
	members := 200
	if raceEnabled || testing.Short() {
		members = 60
	}
	input := generated(10, members)
	ref := replay(t, Config{BatchSize: 1}, input)
	want := sortedLines(ref.out)
	if len(want) < 10*members {
		t.Fatalf("generator gave only %d alerts", len(want))
	}
	// Every alert type the generator is built to provoke must appear.
	for _, typ := range []string{"dormancy", "reactivated", "segment_change", "cross_sell_nudge", "first_redemption_nudge", "upgrade_nudge", "keep_tier_nudge", "retention"} {
		if ref.sum.Alerts[typ] == 0 {
			t.Errorf("no %s alert in the generated input: %v", typ, ref.sum.Alerts)
		}
	}
	if ref.sum.IgnoredErased == 0 || ref.sum.UnmatchedCancellations == 0 || ref.sum.Erased == 0 {
		t.Errorf("generator did not exercise erasure and unmatched cancellations: %+v", ref.sum)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	sizes := []int{1 << 30, 2, 3, 7, 64, 1000}
	for len(sizes) < 56 {
		sizes = append(sizes, 1+rng.IntN(600))
	}
	events := int(ref.sum.Events)
	for _, size := range sizes {
		got := replay(t, Config{BatchSize: size}, input)
		diffLines(t, "batch size "+strconv.Itoa(size), sortedLines(got.out), want)
		if got.sum.Events != int64(events) || got.sum.Active != ref.sum.Active || got.sum.Sleeping != ref.sum.Sleeping {
			t.Fatalf("batch size %d: summary differs: %+v vs %+v", size, got.sum, ref.sum)
		}
	}
}

func TestOutOfOrderInputIsSorted(t *testing.T) {
	lines := genInput(2, 120)
	sorted := replay(t, Config{}, joinLines(lines))
	shuffled := slices.Clone(lines)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	got := replay(t, Config{BatchSize: 17}, joinLines(shuffled))
	diffLines(t, "shuffled input", sortedLines(got.out), sortedLines(sorted.out))

	// A hand-made case: a member's events written newest first still give
	// one dormancy episode, measured from the last event.
	in := `{"event_id":"b","type":"login","member_id":"M1","occurred_at":"2026-03-01T00:00:00Z"}
{"event_id":"a","type":"enrolment","member_id":"M1","occurred_at":"2026-01-01T00:00:00Z","tier":"gold"}
`
	until := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	r := replay(t, Config{Until: until}, []byte(in))
	var dormancy []map[string]any
	for _, l := range sortedLines(r.out) {
		var a map[string]any
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatal(err)
		}
		if a["type"] == "dormancy" {
			dormancy = append(dormancy, a)
		}
	}
	if len(dormancy) != 1 || dormancy[0]["triggered_at"] != "2026-05-30T00:00:00Z" {
		t.Fatalf("dormancy alerts: %v\nall output:\n%s", dormancy, r.out)
	}
	if r.sum.Sleeping != 1 || r.sum.Until != until.Unix() {
		t.Fatalf("summary: %+v", r.sum)
	}
}

func TestGzipInput(t *testing.T) {
	input := generated(1, 300)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(input)
	w.Close()
	plain := replay(t, Config{}, input)
	got := replay(t, Config{}, gz.Bytes())
	if !bytes.Equal(got.out, plain.out) {
		t.Fatal("gzip input gives different alerts from the same input uncompressed")
	}
	if got.sum.Format != "jsonl" || got.sum.Events != plain.sum.Events {
		t.Fatalf("summary: %+v", got.sum)
	}
}

func TestRejects(t *testing.T) {
	in := `{"event_id":"e1","type":"enrolment","member_id":"M1","occurred_at":"2026-01-01T00:00:00Z","tier":"gold"}
not json at all

{"event_id":"e2","type":"booking","member_id":"M1","occurred_at":"2026-01-02T25:00:00Z"}
{"event_id":"e3","type":"booking","member_id":"M1","occurred_at":"2026-01-03T10:00:00Z","amount":-5}
{"event_id":"e4","type":"tier_change","member_id":"M1","occurred_at":"2026-01-04T10:00:00Z","tier":"diamond"}
{"event_id":"e5","type":"cancellation","member_id":"M1","occurred_at":"2026-01-05T10:00:00Z"}
{"event_id":"e6","type":"booking","member_id":"M1","occurred_at":"2026-01-06T10:00:00Z","product":"flight","distance_km":1200}
`
	r := replay(t, Config{}, []byte(in))
	want := []map[string]any{
		{"line": 2.0, "reason": "invalid_json", "record": "not json at all"},
		{"line": 4.0, "reason": "invalid_field", "error": "occurred_at: not RFC 3339"},
		{"line": 5.0, "reason": "invalid_field", "error": "amount: negative"},
		{"line": 6.0, "reason": "unknown_tier", "error": `tier: unknown tier "diamond"`},
		{"line": 7.0, "reason": "missing_field", "error": "booking_id: missing"},
	}
	lines := strings.Split(strings.TrimSpace(string(r.rejects)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("rejects:\n%s", r.rejects)
	}
	inLines := strings.Split(in, "\n")
	for i, l := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("reject line %d is not JSON: %v", i+1, err)
		}
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("reject %d: %s = %v, want %v", i+1, k, got[k], v)
			}
		}
		n := int(got["line"].(float64))
		if got["record"] != inLines[n-1] {
			t.Errorf("reject %d: record %q, want the original line %q", i+1, got["record"], inLines[n-1])
		}
		if got["error"] == "" {
			t.Errorf("reject %d has no error text", i+1)
		}
	}
	s := r.sum
	if s.Records != 7 || s.Events != 2 || s.Applied != 2 || s.RejectedTotal != 5 || s.Rejected["invalid_field"] != 2 {
		t.Fatalf("summary: %+v", s)
	}
	if s.Members != 1 || s.Alerts["segment_change"] == 0 {
		t.Fatalf("the valid events were not applied: %+v\n%s", s, r.out)
	}
}

func TestExternalSortSpills(t *testing.T) {
	// Shuffle so that every run holds events from all over the timeline.
	lines := strings.Split(strings.TrimSpace(string(generated(1, 300))), "\n")
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	input := []byte(strings.Join(lines, "\n") + "\n")

	mem := replay(t, Config{BatchSize: 100}, input)
	if mem.sum.SpillFiles != 0 {
		t.Fatalf("default budget spilled %d files", mem.sum.SpillFiles)
	}
	dir := t.TempDir()
	got := replay(t, Config{SortMemory: 256 << 10, TempDir: dir, BatchSize: 100}, input)
	if got.sum.SpillFiles < 3 {
		t.Fatalf("only %d spill files; the budget should force several", got.sum.SpillFiles)
	}
	diffLines(t, "spilled sort", sortedLines(got.out), sortedLines(mem.out))
	if !bytes.Equal(got.out, mem.out) {
		t.Error("spilled sort gives the same alerts in a different order")
	}
	assertEmpty(t, dir)
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("temporary files left in %s: %v", dir, ents)
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestTempFilesRemovedOnError(t *testing.T) {
	input := generated(1, 300)
	dir := t.TempDir()
	cfg := Config{Engine: testEngine(t), SortMemory: 64 << 10, TempDir: dir, BatchSize: 10}
	_, err := Run(t.Context(), cfg, bytes.NewReader(input), &failWriter{after: 1000}, nil)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Run with a failing output: %v", err)
	}
	assertEmpty(t, dir)
}

func TestCSVMapping(t *testing.T) {
	// An export with its own column names, local times and no type column.
	csvIn := "TXN_ID;CARD_NO;FLIGHT_TIME;KM;FARE;DISCOUNT_RATE;TO\n" +
		"t1;C001;2025-03-01 09:30:00;1250;420.5;0.85;JFK\n" +
		"t2;C001;2025-03-03 08:00:00;;;;\n" +
		"t3;C002;03/04/2025 10:00;800;100;;PVG\n" +
		"t4;C002;2025-03-05 10:00:00;lots;100;;PVG\n" +
		"t5;C002;2025-03-05 11:00:00;800\n"
	m := CSVMapping{
		Columns: map[string]string{
			"event_id": "TXN_ID", "member_id": "CARD_NO", "occurred_at": "FLIGHT_TIME",
			"distance_km": "KM", "amount": "FARE", "discount": "DISCOUNT_RATE", "destination": "TO",
		},
		Constants:  map[string]string{"type": "booking", "product": "flight", "currency": "CNY"},
		TimeLayout: "2006-01-02 15:04:05",
		TimeZone:   "Asia/Shanghai",
		Delimiter:  ";",
	}
	r := replay(t, Config{CSV: m}, []byte(csvIn))
	if r.sum.Format != "csv" || r.sum.Records != 5 || r.sum.Events != 2 || r.sum.RejectedTotal != 3 {
		t.Fatalf("summary: %+v\nrejects:\n%s", r.sum, r.rejects)
	}
	rej := string(r.rejects)
	for _, want := range []string{
		`"line":4,"reason":"invalid_field","error":"occurred_at: \"03/04/2025 10:00\" does not match the time layout \"2006-01-02 15:04:05\""`,
		`"line":5,"reason":"invalid_field","error":"distance_km: not a number"`,
		`"line":6,"reason":"invalid_csv"`,
		`"record":"t4;C002;2025-03-05 10:00:00;lots;100;;PVG"`,
	} {
		if !strings.Contains(rej, want) {
			t.Errorf("rejects lack %s:\n%s", want, rej)
		}
	}

	// The same events written as JSONL (times converted from Shanghai to
	// UTC by hand) give the same alerts.
	jsonl := `{"event_id":"t1","type":"booking","member_id":"C001","occurred_at":"2025-03-01T01:30:00Z","amount":420.5,"currency":"CNY","distance_km":1250,"discount":0.85,"product":"flight","destination":"JFK"}
{"event_id":"t2","type":"booking","member_id":"C001","occurred_at":"2025-03-03T00:00:00Z","currency":"CNY","product":"flight"}
`
	want := replay(t, Config{}, []byte(jsonl))
	if !bytes.Equal(r.out, want.out) || len(r.out) == 0 {
		t.Fatalf("CSV alerts differ from JSONL alerts:\ncsv:\n%s\njsonl:\n%s", r.out, want.out)
	}
}

func TestCSVMappingErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		csv  string
		want string
	}{
		{"unknown field", "columns: {colour: X}", "", "columns.colour: no such event field"},
		{"bad zone", "time_zone: Mars/Olympus", "", `time_zone: "Mars/Olympus" is not an IANA time zone`},
		{"bad layout", "time_layout: yesterday", "", "time_layout"},
		{"unknown key", "colums: {}", "", "field colums not found"},
		{"column not in header", "columns: {member_id: CARD}", "event_id,type,occurred_at\n", `columns.member_id: column "CARD" is not in the header`},
		{"no member column", "", "event_id,type,occurred_at\n", "no column for member_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := LoadCSVMapping(strings.NewReader(tc.yaml))
			if err == nil {
				_, err = Run(t.Context(), Config{Engine: testEngine(t), CSV: m, Format: FormatCSV}, strings.NewReader(tc.csv), &bytes.Buffer{}, nil)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestOversizeLineIsRejectedAndSkipped(t *testing.T) {
	long := `{"event_id":"big","type":"login","member_id":"M1","occurred_at":"2026-01-01T00:00:00Z","region":"` + strings.Repeat("x", 3<<20) + `"}`
	in := long + "\n" + `{"event_id":"a","type":"login","member_id":"M1","occurred_at":"2026-01-02T00:00:00Z"}` + "\n"
	r := replay(t, Config{}, []byte(in))
	if r.sum.Rejected["oversize"] != 1 || r.sum.Events != 1 || r.sum.Records != 2 {
		t.Fatalf("summary: %+v", r.sum)
	}
	if len(r.rejects) > maxRejectRecordBytes+200 || !strings.Contains(string(r.rejects), `"line":1,"reason":"oversize"`) {
		t.Fatalf("reject of %d bytes: %.200s", len(r.rejects), r.rejects)
	}
}

func TestUntilSkipsLaterEvents(t *testing.T) {
	in := `{"event_id":"a","type":"login","member_id":"M1","occurred_at":"2026-01-01T00:00:00Z"}
{"event_id":"b","type":"login","member_id":"M1","occurred_at":"2026-02-01T00:00:00Z"}
`
	r := replay(t, Config{Until: time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)}, []byte(in))
	if r.sum.AfterUntil != 1 || r.sum.Applied != 1 {
		t.Fatalf("summary: %+v", r.sum)
	}
}

func TestSummaryOutput(t *testing.T) {
	r := replay(t, Config{}, generated(1, 300))
	var text bytes.Buffer
	if err := r.sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"records read", "members:", "tier", "gold", "segment", "important_retain", "sleeping %", "total"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := r.sum.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Events  int64            `json:"events"`
		Active  int64            `json:"active"`
		ByTier  []Population     `json:"by_tier"`
		Alerts  map[string]int64 `json:"alerts"`
		Members int              `json:"members"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range back.ByTier {
		sum += p.Active + p.Sleeping
	}
	if back.Events != r.sum.Events || back.Active != r.sum.Active || sum != r.sum.Active+r.sum.Sleeping || int(sum)+r.sum.Tombstones != back.Members {
		t.Fatalf("JSON summary does not add up:\n%s", js.String())
	}
}

// sortAll feeds events to a sorter with the given budget and returns what
// it yields, checking that the temporary directory is left empty.
func sortAll(t *testing.T, budget int64, in []operators.Event) (out []operators.Event, spills int) {
	t.Helper()
	dir := t.TempDir()
	s := newSorter(budget, dir)
	defer func() {
		if err := s.close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		assertEmpty(t, dir)
	}()
	for i := range in {
		e := in[i]
		if err := s.add(&e); err != nil {
			t.Fatalf("add: %v", err)
		}
		e = operators.Event{} // the sorter keeps a copy
	}
	it, err := s.finish()
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	var e operators.Event
	for {
		ok, err := it.next(&e)
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if !ok {
			break
		}
		out = append(out, e) // the strings stay valid after the next call
	}
	return out, s.spills()
}

func TestSorterOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	masks := hasMasks(rng, 3000)
	in := make([]operators.Event, len(masks))
	for i, has := range masks {
		in[i] = randEvent(rng, has)
		in[i].OccurredAt = rng.Int64N(50) - 25 // many ties
		in[i].ID = strconv.Itoa(i)
	}
	// A large event, longer than a run reader's buffer.
	in[10].AccountManager = strings.Repeat("x", 100<<10)
	in[10].Has |= operators.FieldAccountManager
	inOrder := slices.Clone(in)
	slices.SortStableFunc(inOrder, func(a, b operators.Event) int {
		return int(a.OccurredAt - b.OccurredAt)
	})

	for _, tc := range []struct {
		name      string
		in        []operators.Event
		budget    int64
		minSpills int
	}{
		{"memory", in, 1 << 30, 0},
		{"sorted memory", inOrder, 1 << 30, 0},
		{"spilled", in, 64 << 10, 5},
		{"sorted spilled", inOrder, 64 << 10, 5},
		{"one event per run", in[:300], 1, 299},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := slices.Clone(tc.in)
			slices.SortStableFunc(want, func(a, b operators.Event) int {
				return int(a.OccurredAt - b.OccurredAt)
			})
			got, spills := sortAll(t, tc.budget, tc.in)
			if spills < tc.minSpills {
				t.Errorf("%d spill files, want at least %d", spills, tc.minSpills)
			}
			if tc.minSpills == 0 && spills != 0 {
				t.Errorf("%d spill files, want none", spills)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d events, want %d", len(got), len(want))
			}
			for i := range want {
				if !sameEvent(&got[i], &want[i]) {
					t.Fatalf("event %d: id %q at %d, want id %q at %d", i, got[i].ID, got[i].OccurredAt, want[i].ID, want[i].OccurredAt)
				}
			}
		})
	}
}

func TestSorterSortedInputSkipsSort(t *testing.T) {
	s := newSorter(1<<30, t.TempDir())
	defer s.close()
	for i, at := range []int64{1, 1, 2, 5, 5, 9} {
		e := operators.Event{ID: strconv.Itoa(i), OccurredAt: at}
		if err := s.add(&e); err != nil {
			t.Fatal(err)
		}
	}
	if !s.sorted {
		t.Fatal("input in time order not seen as sorted")
	}
	e := operators.Event{ID: "late", OccurredAt: 3}
	if err := s.add(&e); err != nil {
		t.Fatal(err)
	}
	if s.sorted {
		t.Fatal("input out of time order seen as sorted")
	}
}

func TestSorterBudgetCountsArenaAndIndex(t *testing.T) {
	const budget = 10 << 10
	s := newSorter(budget, t.TempDir())
	defer s.close()
	e := operators.Event{ID: "E", TypeName: "login", MemberID: "M", OccurredAt: 1}
	for range 2000 {
		if err := s.add(&e); err != nil {
			t.Fatal(err)
		}
		if s.used() >= budget {
			t.Fatalf("chunk holds %d bytes, budget %d", s.used(), budget)
		}
		if c := int64(cap(s.arena)) + int64(cap(s.index))*entrySize; c > 3*budget {
			t.Fatalf("chunk capacity %d bytes, budget %d", c, budget)
		}
	}
	if s.spills() == 0 {
		t.Fatal("no spill")
	}
}
