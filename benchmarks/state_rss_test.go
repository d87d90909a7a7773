package benchmarks

// Peak RSS of a process holding 1,000,000 members through the state
// package, at several memory budgets. Each measurement runs in a child
// process (this test binary, re-executed) so that its peak RSS (VmHWM) is
// its own: the child loads 1 M members (Get + Put, 1,000 per Commit), then
// updates 250,000 of them (uniformly at random, so the member cache misses
// as often as it is too small) and prints its figures.
// The child runs with GOMEMLIMIT = state.RecommendedMemoryLimit(budget).
// CHURNFLOW_RSS_HEAPPROFILE=FILE makes it write a heap profile at the end.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/churnflow/churnflow/state"
)

const (
	rssEnvDir    = "CHURNFLOW_RSS_DIR"
	rssEnvBudget = "CHURNFLOW_RSS_BUDGET"
	rssResult    = "RSS-RESULT "
	rssUpdates   = 250_000 // members updated after the load
)

// rssReport is what the child prints.
type rssReport struct {
	Budget        int64   `json:"budget"`
	GoMemLimit    int64   `json:"gomemlimit"`
	Members       int     `json:"members"`
	LoadPerSec    float64 `json:"load_members_per_s"`
	UpdatePerSec  float64 `json:"update_members_per_s"`
	VmHWM         int64   `json:"vmhwm_bytes"`        // peak RSS
	VmRSS         int64   `json:"vmrss_bytes"`        // RSS at the end
	RssAnon       int64   `json:"rssanon_bytes"`      // of which anonymous (Go heap, ...)
	RssFile       int64   `json:"rssfile_bytes"`      // of which file pages (memory-mapped tables and logs)
	PeakRssAnon   int64   `json:"peak_rssanon_bytes"` // largest RssAnon sampled every 20 ms
	PeakRssFile   int64   `json:"peak_rssfile_bytes"` // largest RssFile sampled every 20 ms
	HeapInuse     uint64  `json:"heap_inuse_bytes"`
	GoSys         uint64  `json:"go_sys_bytes"`
	NumGC         uint32  `json:"num_gc"`
	CachedStates  int64   `json:"cached_states"`
	CachedBytes   int64   `json:"cached_bytes"`
	DiskBytes     int64   `json:"disk_bytes"`
	MembersOnDisk int64   `json:"members_on_disk"`
}

// procStatus returns a "VmXXX:" field of /proc/self/status in bytes.
func procStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			f := strings.Fields(rest) // "123456 kB"
			if len(f) >= 1 {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n << 10
				}
			}
		}
	}
	return -1
}

// TestStateRSSChild is the child of BenchmarkStateRSS1M; it skips unless
// run by it.
func TestStateRSSChild(t *testing.T) {
	dir := os.Getenv(rssEnvDir)
	if dir == "" {
		t.Skip("child process of BenchmarkStateRSS1M only")
	}
	budget, err := strconv.ParseInt(os.Getenv(rssEnvBudget), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	memberTemplates(t)
	ctx := context.Background()
	opts := state.DefaultOptions(dir)
	opts.MemoryBudget = budget
	st, err := state.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := newStateUpdater(st)
	// VmHWM is the peak of anonymous + file pages together; sample the two
	// kinds to see which one makes the peak.
	var peakAnon, peakFile atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if a := procStatus("RssAnon"); a > peakAnon.Load() {
				peakAnon.Store(a)
			}
			if f := procStatus("RssFile"); f > peakFile.Load() {
				peakFile.Store(f)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	if err := u.update(ctx, stateMembers); err != nil {
		t.Fatal(err)
	}
	if err := u.flush(ctx); err != nil {
		t.Fatal(err)
	}
	load := time.Since(start)
	start = time.Now()
	if err := u.update(ctx, rssUpdates); err != nil {
		t.Fatal(err)
	}
	if err := u.flush(ctx); err != nil {
		t.Fatal(err)
	}
	upd := time.Since(start)
	close(stopSampling)
	<-sampled
	rep := rssReport{
		Budget:       budget,
		Members:      stateMembers,
		LoadPerSec:   stateMembers / load.Seconds(),
		UpdatePerSec: rssUpdates / upd.Seconds(),
	}
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		rep.GoMemLimit, _ = strconv.ParseInt(v, 10, 64)
	}
	if stats, err := st.Stats(); err == nil {
		rep.CachedStates, rep.CachedBytes = stats.CachedStates, stats.CachedBytes
		rep.DiskBytes, rep.MembersOnDisk = stats.DiskBytes, stats.Members
	} else {
		t.Errorf("stats: %v", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rep.HeapInuse, rep.GoSys, rep.NumGC = ms.HeapInuse, ms.Sys, ms.NumGC
	rep.VmHWM, rep.VmRSS = procStatus("VmHWM"), procStatus("VmRSS")
	rep.RssAnon, rep.RssFile = procStatus("RssAnon"), procStatus("RssFile")
	rep.PeakRssAnon, rep.PeakRssFile = peakAnon.Load(), peakFile.Load()
	if path := os.Getenv("CHURNFLOW_RSS_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	out, _ := json.Marshal(rep)
	fmt.Printf("%s%s\n", rssResult, out)
}

// BenchmarkStateRSS1M runs one child per op (use -benchtime 1x) for each
// memory budget and reports its peak RSS and throughput.
func BenchmarkStateRSS1M(b *testing.B) {
	for _, mib := range []int64{128, 256, 512} {
		b.Run(fmt.Sprintf("budget=%dMiB", mib), func(b *testing.B) {
			budget := mib << 20
			limit := state.RecommendedMemoryLimit(budget)
			var rep rssReport
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				cmd := exec.Command(os.Args[0], "-test.run=^TestStateRSSChild$", "-test.count=1", "-test.v", "-test.timeout=10m")
				cmd.Env = append(os.Environ(),
					rssEnvDir+"="+dir,
					rssEnvBudget+"="+strconv.FormatInt(budget, 10),
					"GOMEMLIMIT="+strconv.FormatInt(limit, 10),
				)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				found := false
				for _, line := range strings.Split(string(out), "\n") {
					if j, ok := strings.CutPrefix(line, rssResult); ok {
						if err := json.Unmarshal([]byte(j), &rep); err != nil {
							b.Fatal(err)
						}
						found = true
						b.Logf("%s", j)
					}
				}
				if !found {
					b.Fatalf("child printed no result:\n%s", out)
				}
			}
			b.ReportMetric(float64(rep.VmHWM)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(rep.PeakRssAnon)/(1<<20), "peak-anon-MiB")
			b.ReportMetric(float64(rep.PeakRssFile)/(1<<20), "peak-file-MiB")
			b.ReportMetric(float64(rep.GoMemLimit)/(1<<20), "GOMEMLIMIT-MiB")
			b.ReportMetric(rep.LoadPerSec, "load-members/s")
			b.ReportMetric(rep.UpdatePerSec, "update-members/s")
			b.ReportMetric(float64(rep.CachedStates), "cached-states")
		})
	}
}
