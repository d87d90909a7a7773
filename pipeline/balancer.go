package pipeline

import (
	"slices"

	"github.com/segmentio/kafka-go"
)

// CoPartitionBalancer is a kafka.GroupBalancer that gives partition id N of
// every topic to the same member, as co-partitioned inputs need (kafka-go's
// Range and RoundRobin balancers decide per topic, so partition N of two
// topics can land on two members: kafka-go issue 838).
//
// Members are sorted by id and the partition ids of all topics are sorted
// and dealt out round-robin: id i goes to member i mod len(members), for
// every topic the member subscribes to. Every group member must use it
// (its ProtocolName is the group protocol).
type CoPartitionBalancer struct{}

// ProtocolName is the group protocol name.
func (CoPartitionBalancer) ProtocolName() string { return "churnflow-copartition" }

// UserData is empty.
func (CoPartitionBalancer) UserData() ([]byte, error) { return nil, nil }

// AssignGroups assigns the same partition ids of all topics to the same
// member.
func (CoPartitionBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	if len(members) == 0 {
		return out
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b kafka.GroupMember) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	var ids []int
	for _, p := range partitions {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	owner := make(map[int]int, len(ids))
	for i, id := range ids {
		owner[id] = i % len(ms)
	}
	for _, m := range ms {
		out[m.ID] = map[string][]int{}
	}
	for _, p := range partitions {
		m := ms[owner[p.ID]]
		if !slices.Contains(m.Topics, p.Topic) {
			continue
		}
		out[m.ID][p.Topic] = append(out[m.ID][p.Topic], p.ID)
	}
	for _, byTopic := range out {
		for _, ps := range byTopic {
			slices.Sort(ps)
		}
	}
	return out
}
