package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/churnflow/churnflow/pipeline"
)

// countsJSON are member counts: the total and by each label.
type countsJSON struct {
	Total      int64            `json:"total"`
	ByTier     map[string]int64 `json:"by_tier"`
	ByActivity map[string]int64 `json:"by_activity"`
	BySegment  map[string]int64 `json:"by_segment"`
	// SleepingShare is sleeping / total (0 with no members).
	SleepingShare float64 `json:"sleeping_share"`
}

// daySample is the counts of one UTC day, as last sampled that day.
type daySample struct {
	Day     string     `json:"day"` // YYYY-MM-DD
	AsOf    time.Time  `json:"as_of"`
	Members countsJSON `json:"members"`
}

// statsJSON is /v1/stats's body.
type statsJSON struct {
	AsOf       time.Time        `json:"as_of"`
	Partitions []int            `json:"partitions"`
	Members    countsJSON       `json:"members"`
	Alerts     map[string]int64 `json:"alerts_since_start"`
	Trend      []daySample      `json:"trend"`
	Note       string           `json:"note"`
}

const statsNote = "Counts cover the partitions this instance processes (see partitions); sum them over the instances of the group for the programme. " +
	"alerts_since_start counts since this process started. The trend holds the last sample of each day, kept in memory since the process started (at most 30 days)."

// counts reads the members gauge and the alerts counter.
func (s *Server) counts() (countsJSON, map[string]int64, error) {
	c := countsJSON{ByTier: map[string]int64{}, ByActivity: map[string]int64{}, BySegment: map[string]int64{}}
	alerts := map[string]int64{}
	mfs, err := s.opts.Gatherer.Gather()
	if err != nil {
		return c, alerts, err
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case pipeline.MetricMembers:
			for _, m := range mf.GetMetric() {
				n := int64(m.GetGauge().GetValue())
				if n == 0 {
					continue
				}
				c.Total += n
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "tier":
						c.ByTier[l.GetValue()] += n
					case "activity":
						c.ByActivity[l.GetValue()] += n
					case "segment":
						c.BySegment[l.GetValue()] += n
					}
				}
			}
		case pipeline.MetricAlerts:
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "type" {
						alerts[l.GetValue()] += int64(m.GetCounter().GetValue())
					}
				}
			}
		}
	}
	if c.Total > 0 {
		c.SleepingShare = float64(c.ByActivity["sleeping"]) / float64(c.Total)
	}
	return c, alerts, nil
}

// Sample records today's counts in the trend (replacing an earlier
// sample of the same UTC day).
func (s *Server) Sample() error {
	c, _, err := s.counts()
	if err != nil {
		return err
	}
	now := s.opts.Clock().UTC()
	d := daySample{Day: now.Format(time.DateOnly), AsOf: now, Members: c}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.trend); n > 0 && s.trend[n-1].Day == d.Day {
		s.trend[n-1] = d
		return nil
	}
	s.trend = append(s.trend, d)
	if len(s.trend) > trendDays {
		s.trend = s.trend[len(s.trend)-trendDays:]
	}
	return nil
}

// SampleEvery calls Sample every interval until ctx ends.
func (s *Server) SampleEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Sample(); err != nil {
			s.opts.Log.Warn().Err(err).Msg("stats sample")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) stats(w http.ResponseWriter, _ *http.Request) {
	c, alerts, err := s.counts()
	if err != nil {
		s.opts.Log.Error().Err(err).Msg("stats: gather metrics")
		writeJSON(w, http.StatusInternalServerError, errorJSON{"gathering the counts failed; see the instance's log"})
		return
	}
	s.mu.Lock()
	trend := append([]daySample{}, s.trend...)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, statsJSON{AsOf: s.opts.Clock().UTC(), Partitions: nonNil(s.opts.Status().Processing),
		Members: c, Alerts: alerts, Trend: trend, Note: statsNote})
}
