package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/churnflow/churnflow/operators"
)

// Summary describes one replay. Times are Unix seconds in the struct and
// RFC 3339 in its JSON form.
type Summary struct {
	// Format is the input format used (jsonl or csv).
	Format string
	// Records is the number of input records read, valid or not (blank
	// lines and the CSV header excluded).
	Records int64
	// Events is the number of records that decoded to valid events.
	Events int64
	// Applied counts events that changed member state (every outcome but
	// operators.OutcomeIgnoredErased).
	Applied int64
	// Erased counts member_deleted events applied.
	Erased int64
	// IgnoredErased counts events for erased members, ignored by design.
	IgnoredErased int64
	// UnmatchedCancellations counts cancellations of bookings the member
	// did not hold (applied as activity).
	UnmatchedCancellations int64
	// AfterUntil counts valid events later than Config.Until, skipped.
	AfterUntil int64
	// RejectedTotal counts rejected records; Rejected splits them by reason.
	RejectedTotal int64
	Rejected      map[string]int64
	// AlertsTotal counts alerts written; Alerts splits them by type.
	AlertsTotal int64
	Alerts      map[string]int64
	// FirstEvent and LastEvent bound the applied events' times; Until is
	// the time timers were fired up to (0 when there was nothing to do).
	FirstEvent, LastEvent, Until int64
	// SpillFiles is the number of sorted runs written to disk (0: the input
	// was sorted in memory).
	SpillFiles int
	// Members is the number of members held at the end, Tombstones those
	// of them that were erased (kept to ignore late events).
	Members, Tombstones int
	// Active and Sleeping count the members held (tombstones excluded);
	// ByTier and BySegment split them.
	Active, Sleeping int64
	ByTier           []Population
	BySegment        []Population
	// Duration is the wall time of the run; EventsPerSecond is Events over
	// it.
	Duration        time.Duration
	EventsPerSecond float64
}

// Population counts active and sleeping members of one tier or segment.
type Population struct {
	Name     string `json:"name"`
	Active   int64  `json:"active"`
	Sleeping int64  `json:"sleeping"`
}

// UnknownTier names members whose tier was never given.
const UnknownTier = "unknown"

func (r *runner) finishSummary() {
	s := &r.sum
	s.Rejected = make(map[string]int64, len(r.reject))
	for k, v := range r.reject {
		s.Rejected[string(k)] = v
	}
	s.Alerts = make(map[string]int64)
	for _, t := range operators.AlertTypes() {
		if n := r.alertN[t]; n > 0 {
			s.Alerts[t.String()] = n
			s.AlertsTotal += n
		}
	}
	pc := NewPopulationCounter(r.g)
	s.Members = r.store.Len()
	_ = r.store.Range(func(_ operators.MemberID, st *operators.MemberState) error {
		pc.Add(st)
		return nil
	})
	s.Tombstones, s.Active, s.Sleeping = pc.Tombstones, pc.Active, pc.Sleeping
	s.ByTier, s.BySegment = pc.Tables()
	s.Duration = r.cfg.Clock().Sub(r.start)
	if secs := s.Duration.Seconds(); secs > 0 {
		s.EventsPerSecond = float64(s.Events) / secs
	}
}

// PopulationCounter counts member states as active or sleeping, by tier
// and by segment, as the replay summary does (churnflow demo uses it on
// the pipeline's store). The zero value is not usable: use
// NewPopulationCounter. It is not safe for concurrent use.
type PopulationCounter struct {
	g *operators.Engine
	// Active and Sleeping count the members added (tombstones excluded);
	// Tombstones counts erased members.
	Active, Sleeping int64
	Tombstones       int
	byTier, bySeg    map[string]*Population
}

// NewPopulationCounter returns an empty counter for g's tier ladder.
func NewPopulationCounter(g *operators.Engine) *PopulationCounter {
	return &PopulationCounter{g: g, byTier: map[string]*Population{}, bySeg: map[string]*Population{}}
}

// Add counts one member state.
func (c *PopulationCounter) Add(st *operators.MemberState) {
	if st.Deleted() {
		c.Tombstones++
		return
	}
	sleeping := st.Dormant()
	if sleeping {
		c.Sleeping++
	} else {
		c.Active++
	}
	count := func(m map[string]*Population, name string) {
		p := m[name]
		if p == nil {
			p = &Population{Name: name}
			m[name] = p
		}
		if sleeping {
			p.Sleeping++
		} else {
			p.Active++
		}
	}
	tier := c.g.TierName(st)
	if tier == "" {
		tier = UnknownTier
	}
	count(c.byTier, tier)
	count(c.bySeg, st.Segment.String())
}

// Tables returns the counts by tier (in ladder order, then unknown) and by
// segment (in model order, then none).
func (c *PopulationCounter) Tables() (byTier, bySegment []Population) {
	tierOrder := append(slices.Clone(c.g.Config().TierNames()), UnknownTier)
	segOrder := []string{}
	for _, seg := range operators.Segments() {
		segOrder = append(segOrder, seg.String())
	}
	segOrder = append(segOrder, operators.SegmentNone.String())
	return ordered(maps.Clone(c.byTier), tierOrder), ordered(maps.Clone(c.bySeg), segOrder)
}

// WritePopulation writes ps as the replay summary's aligned table: one
// row per tier or segment (what names the first column) with active,
// sleeping and sleeping %, then a total.
func WritePopulation(w io.Writer, what string, ps []Population) error {
	return writePopulation(w, what, ps)
}

// ordered lists the populations in the given order; names not in it follow
// in name order.
func ordered(m map[string]*Population, order []string) []Population {
	out := make([]Population, 0, len(m))
	for _, name := range order {
		if p, ok := m[name]; ok {
			out = append(out, *p)
			delete(m, name)
		}
	}
	rest := make([]string, 0, len(m))
	for name := range m {
		rest = append(rest, name)
	}
	slices.Sort(rest)
	for _, name := range rest {
		out = append(out, *m[name])
	}
	return out
}

type summaryJSON struct {
	Format                 string           `json:"format"`
	Records                int64            `json:"records"`
	Events                 int64            `json:"events"`
	Applied                int64            `json:"applied"`
	Erased                 int64            `json:"erased"`
	IgnoredErased          int64            `json:"ignored_erased"`
	UnmatchedCancellations int64            `json:"unmatched_cancellations"`
	AfterUntil             int64            `json:"after_until"`
	RejectedTotal          int64            `json:"rejected_total"`
	Rejected               map[string]int64 `json:"rejected"`
	AlertsTotal            int64            `json:"alerts_total"`
	Alerts                 map[string]int64 `json:"alerts"`
	FirstEvent             string           `json:"first_event,omitempty"`
	LastEvent              string           `json:"last_event,omitempty"`
	Until                  string           `json:"until,omitempty"`
	SpillFiles             int              `json:"spill_files"`
	Members                int              `json:"members"`
	Tombstones             int              `json:"tombstones"`
	Active                 int64            `json:"active"`
	Sleeping               int64            `json:"sleeping"`
	ByTier                 []Population     `json:"by_tier"`
	BySegment              []Population     `json:"by_segment"`
	DurationSeconds        float64          `json:"duration_seconds"`
	EventsPerSecond        float64          `json:"events_per_second"`
}

func timeText(t int64) string {
	if t == 0 {
		return ""
	}
	return operators.FormatTime(t)
}

// MarshalJSON writes the summary with snake_case keys and RFC 3339 times.
func (s *Summary) MarshalJSON() ([]byte, error) {
	j := summaryJSON{
		Format: s.Format, Records: s.Records, Events: s.Events, Applied: s.Applied,
		Erased: s.Erased, IgnoredErased: s.IgnoredErased, UnmatchedCancellations: s.UnmatchedCancellations,
		AfterUntil: s.AfterUntil, RejectedTotal: s.RejectedTotal, Rejected: s.Rejected,
		AlertsTotal: s.AlertsTotal, Alerts: s.Alerts,
		FirstEvent: timeText(s.FirstEvent), LastEvent: timeText(s.LastEvent), Until: timeText(s.Until),
		SpillFiles: s.SpillFiles, Members: s.Members, Tombstones: s.Tombstones,
		Active: s.Active, Sleeping: s.Sleeping, ByTier: s.ByTier, BySegment: s.BySegment,
		DurationSeconds: s.Duration.Seconds(), EventsPerSecond: s.EventsPerSecond,
	}
	if j.Rejected == nil {
		j.Rejected = map[string]int64{}
	}
	if j.Alerts == nil {
		j.Alerts = map[string]int64{}
	}
	if j.ByTier == nil {
		j.ByTier = []Population{}
	}
	if j.BySegment == nil {
		j.BySegment = []Population{}
	}
	return json.Marshal(j)
}

// WriteJSON writes the summary as one indented JSON object.
func (s *Summary) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// table lays out rows with the first column left-aligned and the others
// right-aligned, two spaces apart.
type table struct{ rows [][]string }

func (t *table) add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, row)
}

func (t *table) write(w io.Writer) error {
	var width []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			switch {
			case i == 0:
				b.WriteString(c)
				if len(r) > 1 {
					b.WriteString(pad)
				}
			default:
				b.WriteString("  ")
				b.WriteString(pad)
				b.WriteString(c)
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteText writes the summary as aligned tables for people.
func (s *Summary) WriteText(w io.Writer) error {
	var t table
	t.add("records read", s.Records)
	t.add("valid events", s.Events)
	t.add("applied", s.Applied)
	if s.Erased > 0 {
		t.add("members erased", s.Erased)
	}
	t.add("ignored (erased members)", s.IgnoredErased)
	t.add("unmatched cancellations", s.UnmatchedCancellations)
	if s.AfterUntil > 0 {
		t.add("after --until, skipped", s.AfterUntil)
	}
	t.add("rejected", s.RejectedTotal)
	for _, k := range sortedKeysInt(s.Rejected) {
		t.add("  "+k, s.Rejected[k])
	}
	t.add("alerts", s.AlertsTotal)
	for _, at := range operators.AlertTypes() {
		if n, ok := s.Alerts[at.String()]; ok {
			t.add("  "+at.String(), n)
		}
	}
	if s.FirstEvent != 0 {
		t.add("first event", operators.FormatTime(s.FirstEvent))
		t.add("last event", operators.FormatTime(s.LastEvent))
	}
	if s.Until != 0 {
		t.add("timers fired up to", operators.FormatTime(s.Until))
	}
	if s.SpillFiles > 0 {
		t.add("sort spill files", s.SpillFiles)
	}
	t.add("duration", s.Duration.Round(time.Millisecond))
	t.add("events/s", fmt.Sprintf("%.0f", s.EventsPerSecond))
	if _, err := fmt.Fprintf(w, "replay summary (%s input)\n", s.Format); err != nil {
		return err
	}
	if err := t.write(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nmembers: %d held, %d active, %d sleeping", s.Members, s.Active, s.Sleeping)
	if s.Tombstones > 0 {
		fmt.Fprintf(w, ", %d erased (tombstones)", s.Tombstones)
	}
	fmt.Fprint(w, "\n\n")
	if err := writePopulation(w, "tier", s.ByTier); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	return writePopulation(w, "segment", s.BySegment)
}

func writePopulation(w io.Writer, what string, ps []Population) error {
	var t table
	t.add(what, "active", "sleeping", "sleeping %")
	var ta, ts int64
	for _, p := range ps {
		t.add(p.Name, p.Active, p.Sleeping, percent(p.Sleeping, p.Active+p.Sleeping))
		ta += p.Active
		ts += p.Sleeping
	}
	t.add("total", ta, ts, percent(ts, ta+ts))
	return t.write(w)
}

func percent(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", 100*float64(n)/float64(of))
}

func sortedKeysInt(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
