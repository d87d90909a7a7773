package main

import (
	"errors"
	"runtime/debug"
	"testing"

	"github.com/churnflow/churnflow/benchmarks/harness"
)

// TestSourceCommit: a binary's VCS stamp names it; without one (built
// with -buildvcs=false) the working tree's HEAD is used and said to be
// the working tree's, so a result never passes it off as the build's.
func TestSourceCommit(t *testing.T) {
	tree := func() (string, error) { return "tree123", nil }
	noGit := func() (string, error) { return "", errors.New("not a git repository") }
	stamped := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "build456"}, {Key: "vcs.modified", Value: "false"}}
	dirty := []debug.BuildSetting{{Key: "vcs.revision", Value: "build456"}, {Key: "vcs.modified", Value: "true"}}
	unstamped := []debug.BuildSetting{{Key: "-buildvcs", Value: "false"}, {Key: "GOOS", Value: "linux"}}
	for _, c := range []struct {
		name     string
		settings []debug.BuildSetting
		tree     func() (string, error)
		rev      string
		source   harness.CommitSource
	}{
		{"stamped", stamped, tree, "build456", harness.CommitFromBuild},
		{"stamped with changes", dirty, tree, "build456-dirty", harness.CommitFromBuild},
		{"unstamped", unstamped, tree, "tree123", harness.CommitFromWorkingTree},
		{"unstamped outside git", unstamped, noGit, "unknown", harness.CommitUnknown},
		{"no build info", nil, tree, "tree123", harness.CommitFromWorkingTree},
	} {
		rev, source := sourceCommit(c.settings, c.tree)
		if rev != c.rev || source != c.source {
			t.Errorf("%s: %q from %q, want %q from %q", c.name, rev, source, c.rev, c.source)
		}
	}
}
