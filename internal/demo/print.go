package demo

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/churnflow/churnflow/operators"
)

// printer writes alerts, one line each, and the summaries to one writer.
// It shows at most perSecond alert lines a second, and at most a third of
// them of one type, so that rare kinds get through a flood of common ones;
// the others are counted and reported in one line.
type printer struct {
	mu        sync.Mutex
	w         io.Writer
	color     bool
	perSecond int
	now       func() time.Time

	window time.Time        // start of the current second
	shown  int              // lines shown in the window
	byType map[string]int   // lines shown in the window, by type
	hidden map[string]int64 // alerts not shown since the last report
	err    error            // first write error; later writes are skipped
}

func newPrinter(w io.Writer, color bool, perSecond int) *printer {
	return &printer{w: w, color: color, perSecond: perSecond, now: time.Now,
		byType: map[string]int{}, hidden: map[string]int64{}}
}

// labels are the alert types as printed: short, and no wider than 16.
var labels = map[string]string{
	operators.AlertDormancy.String():             "dormancy",
	operators.AlertReactivated.String():          "reactivated",
	operators.AlertRetention.String():            "retention",
	operators.AlertUpgradeNudge.String():         "upgrade",
	operators.AlertKeepTierNudge.String():        "keep-tier",
	operators.AlertFirstRedemptionNudge.String(): "first-redemption",
	operators.AlertCrossSellNudge.String():       "cross-sell",
	operators.AlertSegmentChange.String():        "segment",
}

// ANSI colours by alert type.
var colours = map[string]string{
	operators.AlertDormancy.String():             "\x1b[33m", // yellow
	operators.AlertReactivated.String():          "\x1b[32m", // green
	operators.AlertRetention.String():            "\x1b[31m", // red
	operators.AlertUpgradeNudge.String():         "\x1b[36m", // cyan
	operators.AlertKeepTierNudge.String():        "\x1b[35m", // magenta
	operators.AlertFirstRedemptionNudge.String(): "\x1b[34m", // blue
	operators.AlertCrossSellNudge.String():       "\x1b[36m",
}

const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiDim   = "\x1b[2m"
)

// alert prints a, or counts it as not shown.
func (p *printer) alert(a *operators.AlertJSON) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Sub(p.window) >= time.Second {
		p.window, p.shown = now, 0
		clear(p.byType)
		p.reportHidden()
	}
	perType := max(1, p.perSecond/3)
	if p.shown >= p.perSecond || p.byType[a.Type] >= perType {
		p.hidden[a.Type]++
		return
	}
	p.shown++
	p.byType[a.Type]++
	p.write(formatAlert(a, p.color) + "\n")
}

// formatAlert renders an alert for people: when, what, who, why, what to
// do.
//
//	2025-11-02 dormancy          M0000123  gold/north/A-17  no booking or activity since 2025-08-04 (threshold 90d) → win-back call within 7 days
func formatAlert(a *operators.AlertJSON, color bool) string {
	var b strings.Builder
	day, _, _ := strings.Cut(a.TriggeredAt, "T")
	b.WriteString(day)
	b.WriteByte(' ')
	label := labels[a.Type]
	if label == "" {
		label = a.Type
	}
	if c := colours[a.Type]; color && c != "" {
		b.WriteString(c + fmt.Sprintf("%-16s", label) + ansiReset)
	} else {
		fmt.Fprintf(&b, "%-16s", label)
	}
	b.WriteString("  ")
	b.WriteString(a.MemberID)
	b.WriteString("  ")
	var who []string
	for _, s := range []string{a.Member.Tier, a.Member.Region, a.Member.AccountManager} {
		if s != "" {
			who = append(who, s)
		}
	}
	if len(who) == 0 {
		who = []string{"-"}
	}
	b.WriteString(strings.Join(who, "/"))
	b.WriteString("  ")
	b.WriteString(a.Reason)
	if a.ValueAtRisk != nil {
		b.WriteString(" (value at risk " + strconv.FormatFloat(*a.ValueAtRisk, 'f', 0, 64) + ")")
	}
	if a.SuggestedAction != "" {
		b.WriteString(" → ")
		b.WriteString(a.SuggestedAction)
	}
	return b.String()
}

// reportHidden writes one line with the alerts not shown; p.mu is held.
func (p *printer) reportHidden() {
	var n int64
	types := make([]string, 0, len(p.hidden))
	for t, k := range p.hidden {
		n += k
		types = append(types, t)
	}
	if n == 0 {
		return
	}
	slices.SortFunc(types, func(a, b string) int { return alertOrder(a) - alertOrder(b) })
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, p.hidden[t])
	}
	line := fmt.Sprintf("           … %d more not shown (%s)", n, strings.Join(parts, ", "))
	if p.color {
		line = ansiDim + line + ansiReset
	}
	p.write(line + "\n")
	clear(p.hidden)
}

// block writes a multi-line block (a summary) after the pending count of
// alerts not shown.
func (p *printer) block(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reportHidden()
	p.write(text)
}

func (p *printer) write(s string) {
	if p.err != nil {
		return
	}
	_, p.err = io.WriteString(p.w, s)
}

// alertOrder is the place of an alert type in operators.AlertTypes.
func alertOrder(t string) int {
	if at, ok := operators.ParseAlertType(t); ok {
		return int(at)
	}
	return 1000
}
