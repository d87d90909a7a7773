package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/churnflow/churnflow/internal/devbroker"
)

type brokerFlags struct {
	listen     string
	partitions int
}

func newBrokerCmd(s streams) *cobra.Command {
	def := devbroker.DefaultConfig()
	f := &brokerFlags{listen: def.Listen, partitions: int(def.Partitions)}
	cmd := &cobra.Command{
		Use:   "broker [--listen 127.0.0.1:9092] [--partitions 8]",
		Short: "Run an in-memory Kafka-protocol broker for development (not for production)",
		Long: `broker runs an embedded, in-memory Kafka-protocol broker on 127.0.0.1 with
churnflow's topics created (the member-segments topic compacted), for
development, demos and tests: any Kafka client can produce and consume through
it. It keeps every record in RAM and loses them all when it stops. It is NOT a
production broker: point churnflow run at a real Kafka cluster for that.

It runs until interrupted (Ctrl-C or SIGTERM).`,
		Example: `  churnflow broker
  churnflow broker --listen 127.0.0.1:19092 --partitions 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := devbroker.DefaultConfig()
			cfg.Listen, cfg.Partitions = f.listen, int32(f.partitions)
			b, err := devbroker.Start(cfg)
			if err != nil {
				return usagef("%v", err)
			}
			defer b.Close()
			topics := append(cfg.Topics.Inputs(), cfg.Topics.Outputs()...)
			fmt.Fprintf(s.err, "churnflow broker: in-memory Kafka-protocol broker for development only (NOT for production: records live in RAM and vanish on exit)\n")
			fmt.Fprintf(s.err, "topics (%d partitions each): %s\n", cfg.Partitions, strings.Join(topics, ", "))
			fmt.Fprintf(s.out, "BOOTSTRAP=%s\n", b.Addr())
			<-cmd.Context().Done()
			fmt.Fprintln(s.err, "churnflow broker: stopped")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.listen, "listen", f.listen, "address to listen on (127.0.0.1 or localhost; port 0 picks a free one)")
	fl.Var(countValue{&f.partitions}, "partitions", "partitions of every topic")
	return cmd
}
