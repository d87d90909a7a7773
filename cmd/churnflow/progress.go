package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/churnflow/churnflow/internal/replay"
)

// progress shows a bar on standard error: bytes read while the input is
// read and sorted (with a total when the input is a file of known size),
// then events applied. A nil bar shows nothing.
type progress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	phase replay.Phase
}

// newProgress decides from mode (auto, always, never) whether to draw.
func newProgress(w io.Writer, mode string, size int64) *progress {
	p := &progress{w: w}
	on := mode == "always"
	if mode == "auto" {
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			on = true
		}
	}
	if !on {
		return p
	}
	p.bar = progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("reading "),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { io.WriteString(w, "\n") }),
	)
	return p
}

// wrap counts the bytes read from r on the bar.
func (p *progress) wrap(r io.Reader) io.Reader {
	if p.bar == nil {
		return r
	}
	return &countingReader{r: r, bar: p.bar}
}

// update follows replay.Config.Progress.
func (p *progress) update(st replay.Progress) {
	if p.bar == nil {
		return
	}
	if st.Phase == replay.PhaseApply && p.phase == replay.PhaseRead {
		p.phase = replay.PhaseApply
		_ = p.bar.Finish()
		p.bar = progressbar.NewOptions64(st.Events,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("applying"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { io.WriteString(p.w, "\n") }),
		)
	}
	if p.phase == replay.PhaseApply {
		_ = p.bar.Set64(st.Applied)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

type countingReader struct {
	r   io.Reader
	bar *progressbar.ProgressBar
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		_ = c.bar.Add(n)
	}
	return n, err
}
