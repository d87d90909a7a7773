package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/churnflow/churnflow/state"
)

// replayedState runs the sample through "replay --state" and returns the
// state directory and the alerts.
func replayedState(t *testing.T) (string, []map[string]any) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	code, stdout, stderr := run(t, "", nil, "replay", "--input", sample, "--until", "2026-07-01T00:00:00Z",
		"--state", dir, "--memory", "32MiB", "--summary", "none")
	if code != 0 {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	return dir, jsonLines(t, stdout)
}

func TestInspectMember(t *testing.T) {
	dir, alerts := replayedState(t)
	id := alerts[len(alerts)-1]["member_id"].(string)
	code, stdout, stderr := run(t, "", nil, "inspect", "member", id, "--state", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	for _, k := range []string{"member_id", "partition", "tier", "region", "account_manager", "segment", "stage", "dormant",
		"lrfmc", "value_score", "clock", "due", "bookings", "booking_days", "points", "history", "open_trips"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in:\n%s", k, stdout)
		}
	}
	if m["member_id"] != id || m["partition"] != 0.0 || m["clock"] == "" {
		t.Errorf("member:\n%s", stdout)
	}
	if l, ok := m["lrfmc"].(map[string]any); !ok || l["L"] == nil {
		t.Errorf("lrfmc: %v", m["lrfmc"])
	}

	// The member's figures as of its clock agree with its last alert's
	// context where the member's state has not moved since.
	last := alerts[len(alerts)-1]["member"].(map[string]any)
	if m["tier"] != last["tier"] || m["region"] != last["region"] {
		t.Errorf("inspect says tier %v region %v, the last alert %v %v", m["tier"], m["region"], last["tier"], last["region"])
	}

	code, stdout, stderr = run(t, "", nil, "inspect", "member", "NOPE", "--state", dir)
	if want := `member "NOPE": not found in --state ` + dir; code != 1 || stdout != "" || !strings.Contains(stderr, want) {
		t.Errorf("unknown member: exit %d, stdout %q, stderr:\n%s\nwant: %s", code, stdout, stderr, want)
	}
}

func TestInspectStats(t *testing.T) {
	dir, _ := replayedState(t)
	code, stdout, stderr := run(t, "", nil, "inspect", "stats", "--state", dir, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var st struct {
		Dir          string  `json:"dir"`
		Partitions   []int32 `json:"partitions"`
		Members      int64   `json:"members"`
		Timers       int64   `json:"timers"`
		OutboxDepth  *int64  `json:"outbox_depth"`
		DedupMarkers int64   `json:"dedup_markers"`
		DiskBytes    int64   `json:"disk_bytes"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if st.Dir != dir || len(st.Partitions) != 1 || st.Members == 0 || st.Timers == 0 || st.OutboxDepth == nil || *st.OutboxDepth != 0 || st.DiskBytes <= 0 {
		t.Errorf("stats: %s", stdout)
	}
	code, stdout, stderr = run(t, "", nil, "inspect", "stats", "--state", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"partitions     0", "members", "timers", "outbox depth   0", "dedup markers", "bytes on disk"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text stats lack %q:\n%s", want, stdout)
		}
	}
}

func TestInspectErrors(t *testing.T) {
	dir, _ := replayedState(t)
	missing := filepath.Join(t.TempDir(), "nope")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no state", []string{"inspect", "stats"}, 2, "--state: required"},
		{"missing state", []string{"inspect", "stats", "--state", missing}, 2, `--state: directory "` + missing + `" does not exist`},
		{"not a state", []string{"inspect", "member", "M001", "--state", t.TempDir()}, 2, "holds no churnflow state"},
		{"no member id", []string{"inspect", "member", "--state", dir}, 2, "accepts 1 arg"},
		{"nothing to inspect", []string{"inspect", "--state", dir}, 2, "give what to inspect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, "", nil, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d (want %d):\n%s\nwant: %s", code, tc.code, stderr, tc.want)
			}
		})
	}

	// A directory another store holds open is refused with a plain
	// message.
	st, err := state.Open(state.DefaultOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, args := range [][]string{{"inspect", "stats", "--state", dir}, {"inspect", "member", "M001", "--state", dir}} {
		code, _, stderr := run(t, "", nil, args...)
		if want := "--state: " + dir + " is in use by another churnflow process; stop it or inspect a copy"; code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%v on a locked directory: exit %d:\n%s\nwant: %s", args, code, stderr, want)
		}
	}
}
