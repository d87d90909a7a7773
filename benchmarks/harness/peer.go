package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/pipeline"
)

// PeerJar is the Kafka Streams peer's jar, relative to its directory.
const PeerJar = "target/churnflow-kstreams-peer.jar"

// PeerHeap is the peer JVM's heap limit.
const PeerHeap = "-Xmx1g"

// Agreement compares the dormancy alerts of churnflow and the peer whose
// dormancy began at or before Cutoff (later ones depend on where each
// engine's watermark stood when it stopped).
type Agreement struct {
	Cutoff    string   `json:"cutoff"`
	Churnflow int      `json:"churnflow"`
	KStreams  int      `json:"kstreams"`
	Agreed    int      `json:"agreed"`
	Examples  []string `json:"examples,omitempty"` // a few differences
}

// OK reports whether both sides gave the same alerts.
func (a *Agreement) OK() bool { return a.Agreed == a.Churnflow && a.Agreed == a.KStreams }

// peer runs the Kafka Streams peer on the preloaded events, times it as
// the other phases are timed (from its first record to the last), and
// checks that its dormancy alerts agree with churnflow's.
func (h *run) peer(ctx context.Context) error {
	jar, err := buildPeer(ctx, h.cfg.PeerDir, h.cfg.Progress)
	if err != nil {
		return err
	}
	n := int64(h.cfg.Events)
	alerts := h.topics.Bookings + "kstreams-alerts"
	if err := createTopics(ctx, h.brokers, []string{alerts}, h.cfg.Partitions); err != nil {
		return err
	}
	stateDir := filepath.Join(h.dir, "kstreams")
	argv := []string{"java", PeerHeap, "-jar", jar, "--bootstrap", strings.Join(h.brokers, ","),
		"--application-id", h.topics.Bookings + "kstreams", "--bookings", h.topics.Bookings, "--activity", h.topics.Activity,
		"--alerts", alerts, "--state-dir", stateDir, "--lateness-seconds", strconv.Itoa(int(pipeline.DefaultLateness.Seconds()))}
	h.logf("kstreams: running %s", strings.Join(argv, " "))
	c, err := startChild(h.dir, "kstreams", argv, nil)
	if err != nil {
		return err
	}
	var first, last time.Time
	var n0, seen int64
	for seen < n {
		line, err := c.next(ctx, "PROGRESS ", 60*time.Minute)
		if err != nil {
			c.kill()
			return err
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		cnt, err1 := strconv.ParseInt(f[0], 10, 64)
		ms, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if cnt > 0 && first.IsZero() {
			first, n0 = time.UnixMilli(ms), cnt
		}
		seen, last = cnt, time.UnixMilli(ms)
	}
	hwm := peakRSSOf(strconv.Itoa(c.cmd.Process.Pid)) // before it exits (see PhaseResult.PeakRSS)
	u, err := c.stop(ctx, 2*time.Minute)
	if err != nil {
		return err
	}
	if hwm > 0 {
		u.PeakRSS = hwm
	}
	os.RemoveAll(stateDir)
	secs := last.Sub(first).Seconds()
	if secs > 0 {
		h.res.KStreamsEventsPerSec = float64(seen-n0) / secs
	}
	h.res.CPUSecondsPerMillion["kstreams"] = u.CPUSeconds / float64(n) * 1e6
	h.res.PeakRSSByPhase["kstreams"] = u.PeakRSS
	h.logf("kstreams: %d records in %.2f s: %.0f events/s, %.1f CPU s per million, peak RSS %d MiB",
		seen, secs, h.res.KStreamsEventsPerSec, h.res.CPUSecondsPerMillion["kstreams"], u.PeakRSS>>20)

	// Agreement on the dormancy alerts.
	cutoff := h.data.last - int64(pipeline.DefaultLateness.Seconds()) - 86400
	ours, err := readDormancy(ctx, h.brokers, h.topics.Dormancy, "member_id", "triggered_at", "dormancy", cutoff) // the topic also carries reactivated alerts
	if err != nil {
		return err
	}
	theirs, err := readDormancy(ctx, h.brokers, alerts, "member_id", "at", "dormancy", cutoff)
	if err != nil {
		return err
	}
	a := &Agreement{Cutoff: time.Unix(cutoff, 0).UTC().Format(time.RFC3339), Churnflow: len(ours), KStreams: len(theirs)}
	for k := range ours {
		if theirs[k] {
			a.Agreed++
		} else if len(a.Examples) < 5 {
			a.Examples = append(a.Examples, "churnflow only: "+k)
		}
	}
	for k := range theirs {
		if !ours[k] && len(a.Examples) < 10 {
			a.Examples = append(a.Examples, "kstreams only: "+k)
		}
	}
	slices.Sort(a.Examples)
	h.res.KStreamsAgreement = a
	h.logf("kstreams: dormancy alerts up to %s: churnflow %d, kstreams %d, agreed %d", a.Cutoff, a.Churnflow, a.KStreams, a.Agreed)
	if !a.OK() {
		h.res.KStreamsEventsPerSec = 0
		h.res.Notes = append(h.res.Notes, "the Kafka Streams peer's dormancy alerts disagree with churnflow's: its throughput is not counted")
	}
	return nil
}

// readDormancy reads topic's alerts (JSON with the member id and time in
// the named fields; only those of type typ unless typ is "") whose time is
// at or before cutoff, as a set of "member@day".
func readDormancy(ctx context.Context, brokers []string, topic, memberField, atField, typ string, cutoff int64) (map[string]bool, error) {
	cfg := pipeline.DefaultConfig()
	cfg.Brokers = brokers
	var mu sync.Mutex
	set := map[string]bool{}
	err := pipeline.ReadAll(ctx, cfg, []string{topic}, func(_ int, msgs []kafka.Message) error {
		for _, m := range msgs {
			var v map[string]any
			if err := json.Unmarshal(m.Value, &v); err != nil {
				return fmt.Errorf("alert in %s at %d: %w", topic, m.Offset, err)
			}
			if typ != "" && v["type"] != typ {
				continue
			}
			member, _ := v[memberField].(string)
			at, _ := v[atField].(string)
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return fmt.Errorf("alert in %s at %d: %s %q: %w", topic, m.Offset, atField, at, err)
			}
			if t.Unix() > cutoff {
				continue
			}
			mu.Lock()
			set[member+"@"+t.UTC().Format(time.DateOnly)] = true
			mu.Unlock()
		}
		return nil
	})
	return set, err
}

// buildPeer builds the peer's jar with Maven (dependencies in the
// repository's .cache/m2) when it is missing or older than its sources, and
// returns its path.
func buildPeer(ctx context.Context, dir string, progress interface{ Write([]byte) (int, error) }) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("kstreams peer: no directory (benchmarks/peers/kafka-streams)")
	}
	jar := filepath.Join(dir, PeerJar)
	if fresh, err := jarFresh(dir, jar); err != nil {
		return "", err
	} else if fresh {
		return jar, nil
	}
	repo, err := filepath.Abs(filepath.Join(dir, "..", "..", "..", ".cache", "m2"))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "mvn", "-q", "-B", "package", "-DskipTests", "-Dmaven.repo.local="+repo)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build the Kafka Streams peer (mvn package in %s): %w\n%s", dir, err, out)
	}
	if progress != nil {
		fmt.Fprintf(progress, "bench: kstreams: built %s\n", jar)
	}
	return jar, nil
}

// jarFresh reports whether jar exists and is newer than the pom and every
// source file under dir/src.
func jarFresh(dir, jar string) (bool, error) {
	st, err := os.Stat(jar)
	if err != nil {
		return false, nil
	}
	newest := time.Time{}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "target" {
			return filepath.SkipDir
		}
		if info, err := d.Info(); err == nil && !d.IsDir() && info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("kafka streams peer sources: %w", err)
	}
	return st.ModTime().After(newest), nil
}
