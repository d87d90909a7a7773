package demo

import (
	"math"
	"sync"
	"time"
)

// simClock maps wall time to simulated time: sim0 at wall0, then speed
// simulated seconds per wall second.
type simClock struct {
	wall0 time.Time // with a monotonic reading
	sim0  time.Time
	speed float64
}

func newSimClock(sim0 time.Time, speed float64) *simClock {
	return &simClock{wall0: time.Now(), sim0: sim0, speed: speed}
}

// at returns the simulated time at wall time w.
func (c *simClock) at(w time.Time) time.Time {
	return c.sim0.Add(time.Duration(float64(w.Sub(c.wall0)) * c.speed))
}

// Now returns the simulated time now.
func (c *simClock) Now() time.Time { return c.at(time.Now()) }

// wallAt returns the wall time at which the simulated clock reaches sim.
func (c *simClock) wallAt(sim time.Time) time.Time {
	return c.wall0.Add(time.Duration(float64(sim.Sub(c.sim0)) / c.speed))
}

// liveFrontier is the frontier published once the generator has caught up
// with the simulated clock: from then on the pipeline's clock is the
// simulated clock.
const liveFrontier = math.MaxInt64

// pipelineClock is the pipeline's clock (see the package comment): the
// smaller of the simulated clock and the generator's frontier as it was
// lag ago.
type pipelineClock struct {
	sim *simClock
	lag time.Duration

	mu    sync.Mutex
	base  int64  // frontier (Unix seconds) as of lag ago
	marks []mark // frontiers published since, by wall time
}

type mark struct {
	wall     time.Time
	frontier int64
}

func newPipelineClock(sim *simClock, lag time.Duration, first int64) *pipelineClock {
	return &pipelineClock{sim: sim, lag: lag, base: first}
}

// publish records that every record before frontier (Unix seconds) has been
// produced and acknowledged. Frontiers never decrease.
func (c *pipelineClock) publish(frontier int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.marks); n > 0 && c.marks[n-1].frontier >= frontier {
		return
	}
	c.marks = append(c.marks, mark{wall: time.Now(), frontier: frontier})
}

// Now is the pipeline's clock; it never goes backwards.
func (c *pipelineClock) Now() time.Time {
	now := time.Now()
	before := now.Add(-c.lag)
	c.mu.Lock()
	i := 0
	for i < len(c.marks) && !c.marks[i].wall.After(before) {
		c.base = c.marks[i].frontier
		i++
	}
	if i > 0 {
		c.marks = append(c.marks[:0], c.marks[i:]...)
	}
	f := c.base
	c.mu.Unlock()
	sim := c.sim.at(now)
	if f != liveFrontier && f < sim.Unix() {
		return time.Unix(f, 0).UTC()
	}
	return sim
}
