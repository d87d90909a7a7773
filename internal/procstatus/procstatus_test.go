package procstatus

import (
	"runtime"
	"testing"
)

func TestParse(t *testing.T) {
	status := []byte("Name:\tchurnflow\nVmHWM:\t  600000 kB\nVmRSS:\t  500000 kB\nRssAnon:\t  400000 kB\nRssFile:\t   70000 kB\nRssShmem:\t       0 kB\n")
	for key, want := range map[string]int64{"VmHWM": 600000 << 10, "VmRSS": 500000 << 10, "RssFile": 70000 << 10, "RssShmem": 0} {
		if got := Parse(status, key); got != want {
			t.Errorf("Parse(%s) = %d, want %d", key, got, want)
		}
	}
	// "Rss" is not a key of its own: only a whole key before the colon.
	for _, tc := range []struct{ status, key string }{
		{"VmRSS:\t1 kB\n", "RssFile"},
		{"RssAnon:\t1 kB\n", "Rss"},
		{"RssFile:\tmany kB\n", "RssFile"},
		{"RssFile:\t12 MB\n", "RssFile"},
		{"RssFile:\n", "RssFile"},
	} {
		if got := Parse([]byte(tc.status), tc.key); got != -1 {
			t.Errorf("Parse(%q, %s) = %d, want -1", tc.status, tc.key, got)
		}
	}
}

func TestRead(t *testing.T) {
	if runtime.GOOS != "linux" {
		if got := Read("self", "VmRSS"); got != -1 {
			t.Errorf("Read without /proc = %d, want -1", got)
		}
		return
	}
	if got := Read("self", "VmRSS"); got <= 0 {
		t.Errorf("Read(self, VmRSS) = %d, want a positive size", got)
	}
	if got := Read("self", "NoSuchKey"); got != -1 {
		t.Errorf("Read(self, NoSuchKey) = %d, want -1", got)
	}
	if got := Read("0", "VmRSS"); got != -1 {
		t.Errorf("Read of no process = %d, want -1", got)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with a space and a parenthesis; utime 1234, stime 566.
	stat := []byte("4242 (cf (x) y) S 1 4242 4242 0 -1 4194560 9000 0 12 0 1234 566 0 0 20 0 9 0 100 1000000 2000 18446744073709551615\n")
	if got := ParseStat(stat); got != 18.0 {
		t.Errorf("ParseStat = %v, want 18 (1,800 ticks)", got)
	}
	for _, bad := range []string{"", "4242 cf S 1", "4242 (cf) S 1 2 3", "4242 (cf) S 1 4242 4242 0 -1 4194560 9000 0 12 0 x 566 0"} {
		if got := ParseStat([]byte(bad)); got != -1 {
			t.Errorf("ParseStat(%q) = %v, want -1", bad, got)
		}
	}
	if got := CPUSeconds("self"); got < 0 {
		t.Errorf("CPUSeconds(self) = %v", got)
	}
}
