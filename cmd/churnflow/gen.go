package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/model"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
)

type genFlags struct {
	members int
	start   time.Time
	days    int
	seed    int
	badRate float64
	out     string
	// To Kafka instead of --out.
	brokers       []string
	topicBookings string
	topicActivity string
	rate          float64
	// config secures --brokers: its kafka.tls and kafka.sasl sections.
	config string
	// How members book: a purchase model and its parameters, or a model
	// file's chosen model.
	purchaseModel  string
	purchaseParams string
	model          string
}

func newGenCmd(s streams) *cobra.Command {
	def := gen.DefaultConfig()
	f := &genFlags{members: def.Members, start: def.Start, days: def.Days, seed: int(def.Seed), badRate: def.BadRate}
	cmd := &cobra.Command{
		Use:   "gen (--out FILE | --brokers h:p,...) [flags]",
		Short: "Generate a synthetic, reproducible member population's events",
		Long: `gen writes the booking and activity events of a synthetic loyalty programme as
JSON lines in time order: members enrol over time, book at heterogeneous rates
(BG/NBD: Poisson bookings with gamma-distributed rates, and a chance to drop
out for good after each booking), cancel, use the app, earn and redeem points,
change tier. With --bad-rate a share of malformed records is mixed in. The
same flags give the same bytes.

How members book is a purchase model with known parameters, so that
"churnflow fit" can be checked against them (docs/model.md): BG/NBD by
default, MBG/NBD with --purchase-model mbgnbd, parameters with
--purchase-params r,alpha,a,b (alpha in days), or the model a model file
chose with --model.

With --brokers the records are produced to the input topics of a Kafka
cluster instead (bookings and cancellations to --topic-bookings, everything
else to --topic-activity), keyed by member id, each value the JSON line (or a
malformed record's bytes), with acks from all in-sync replicas. --rate paces
them in events per second; by default they go as fast as the cluster takes
them. TLS and SASL come from the kafka.tls and kafka.sasl sections of --config
(the file of "churnflow run") and the CHURNFLOW_KAFKA_TLS_* and
CHURNFLOW_KAFKA_SASL_* variables; the file's other settings are not used.`,
		Example: `  churnflow gen --members 10000 --days 730 --out events.jsonl
  churnflow gen --members 500 --bad-rate 0.01 --seed 7 --out - | churnflow replay --input -
  churnflow gen --members 10000 --brokers 127.0.0.1:9092 --rate 5000
  churnflow gen --members 1000 --brokers kafka-1:9093 --config churnflow.yaml
  churnflow gen --members 20000 --days 730 --purchase-model mbgnbd --purchase-params 0.5,45,0.6,10 --out events.jsonl
  churnflow gen --members 20000 --days 730 --model model.json --out events.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGen(cmd, s, f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.Var(countValue{&f.members}, "members", "population size")
	fl.Var(dateValue{&f.start}, "start", "first day of the simulated span (YYYY-MM-DD)")
	fl.Var(countValue{&f.days}, "days", "length of the simulated span in days")
	fl.IntVar(&f.seed, "seed", f.seed, "seed: the same seed gives the same population")
	fl.Float64Var(&f.badRate, "bad-rate", f.badRate, "share of malformed records to mix in (0 to 0.5)")
	fl.StringVar(&f.out, "out", "", `output file ("-" for standard output)`)
	topics := pipeline.DefaultTopics()
	fl.StringSliceVar(&f.brokers, "brokers", nil, "produce to these Kafka brokers instead of --out")
	fl.StringVar(&f.topicBookings, "topic-bookings", topics.Bookings, "topic of booking and cancellation events (with --brokers)")
	fl.StringVar(&f.topicActivity, "topic-activity", topics.Activity, "topic of every other event (with --brokers)")
	fl.Float64Var(&f.rate, "rate", 0, "events per second to produce (with --brokers; 0: as fast as possible)")
	fl.StringVar(&f.config, "config", "", "configuration file whose kafka.tls and kafka.sasl sections secure --brokers (see deploy/churnflow.example.yaml)")
	fl.Var(newChoice(&f.purchaseModel, model.NameBGNBD, model.NameBGNBD, model.NameMBGNBD), "purchase-model", "how members book: bgnbd (drop out only after a repeat booking) or mbgnbd (after any booking)")
	fl.StringVar(&f.purchaseParams, "purchase-params", "", fmt.Sprintf("r,alpha,a,b of --purchase-model, alpha in days (default %s)", formatPurchases(def.Purchases)))
	fl.StringVar(&f.model, "model", "", "draw members from the purchase model a model file chose (churnflow fit; week units are converted to days) instead of --purchase-model and --purchase-params")
	return cmd
}

func runGen(cmd *cobra.Command, s streams, f *genFlags) error {
	toKafka, err := genTarget(cmd, s, f)
	if err != nil {
		return err
	}
	if f.badRate < 0 || f.badRate > 0.5 {
		return usagef("--bad-rate: %v is out of range; give a share from 0 to 0.5, e.g. 0.01", f.badRate)
	}
	if f.seed < 0 {
		return usagef("--seed: %d is negative; give a whole number from 0", f.seed)
	}
	cfg := gen.DefaultConfig()
	cfg.Members, cfg.Start, cfg.Days, cfg.Seed, cfg.BadRate = f.members, f.start, f.days, uint64(f.seed), f.badRate
	cfg.Tiers = operators.DefaultConfig().Tiers
	if cfg.Purchases, err = genPurchases(cmd, f, cfg.Purchases); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	if toKafka {
		return genToKafka(cmd.Context(), s, f, cfg)
	}
	out, err := createOutput(s.out, "--out", f.out)
	if err != nil {
		return err
	}
	defer out.abort()
	w := bufio.NewWriterSize(out, 1<<20)
	st, err := gen.WriteJSONL(w, cfg)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	fmt.Fprintf(s.err, "gen: %d records (%d malformed) for %d members, %s to %s, %s\n",
		st.Records, st.Bad, st.Members, operators.FormatTime(st.First), operators.FormatTime(st.Last), byteSize(st.Bytes))
	return nil
}

// dateValue is a YYYY-MM-DD date at midnight UTC.
type dateValue struct{ v *time.Time }

func (d dateValue) String() string { return d.v.Format(time.DateOnly) }
func (d dateValue) Type() string   { return "YYYY-MM-DD" }
func (d dateValue) Set(s string) error {
	v, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return fmt.Errorf("%q is not a date (example: 2025-01-01)", s)
	}
	*d.v = v
	return nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// genTarget checks --out and --brokers: exactly one is needed. Both flags
// also read the environment (CHURNFLOW_OUT, CHURNFLOW_BROKERS, which
// "churnflow run" shares): when both are set and one of them only by its
// variable, the one given on the command line wins.
func genTarget(cmd *cobra.Command, s streams, f *genFlags) (toKafka bool, err error) {
	out, brokers := f.out != "", cmd.Flags().Changed("brokers")
	if out && brokers {
		fromEnv := func(flag, value string) bool {
			v, ok := s.getenv(envName(flag))
			return ok && v == value
		}
		outEnv := fromEnv("out", f.out)
		brokersEnv := fromEnv("brokers", cmd.Flags().Lookup("brokers").Value.String()) ||
			fromEnv("brokers", strings.Join(f.brokers, ","))
		switch {
		case outEnv && !brokersEnv:
			out = false
		case brokersEnv && !outEnv:
			brokers = false
		default:
			return false, usagef("--out and --brokers: give one, not both (a file, or Kafka brokers to produce to)")
		}
	}
	switch {
	case brokers:
		f.out = ""
	case out:
		if cmd.Flags().Changed("rate") {
			return false, usagef("--rate: only with --brokers (a file is written as fast as possible)")
		}
		// CHURNFLOW_CONFIG, "churnflow run"'s, is no reason to refuse a file.
		if v, ok := s.getenv(envName("config")); cmd.Flags().Changed("config") && (!ok || v != f.config) {
			return false, usagef("--config: only with --brokers (it gives the brokers' TLS and SASL settings)")
		}
		return false, nil
	default:
		return false, usagef(`--out: required; give a file name, or "-" for standard output, or --brokers h:p,... to produce to Kafka`)
	}
	var bs []string
	for _, b := range f.brokers {
		if b = strings.TrimSpace(b); b != "" {
			bs = append(bs, b)
		}
	}
	if len(bs) == 0 {
		return false, usagef("--brokers: empty; give host:port[,host:port...]")
	}
	f.brokers = bs
	if f.topicBookings == "" || f.topicActivity == "" {
		return false, usagef("--topic-bookings and --topic-activity: give non-empty topic names")
	}
	if f.topicBookings == f.topicActivity {
		return false, usagef("--topic-bookings and --topic-activity: both are %q; bookings and activity go to different topics", f.topicBookings)
	}
	if f.rate < 0 || math.IsNaN(f.rate) || math.IsInf(f.rate, 0) {
		return false, usagef("--rate: %v; give events per second, 0 for as fast as possible", f.rate)
	}
	return true, nil
}

// genBatch is the most records gen hands the Kafka writer at once: one
// WriteMessages call per batch, never one synchronous write per record.
const genBatch = 4096

// genToKafka produces cfg's population to the input topics.
func genToKafka(ctx context.Context, s streams, f *genFlags, cfg gen.Config) error {
	stream, err := gen.NewStream(cfg)
	if err != nil {
		return usagef("%v", err)
	}
	rc, err := loadConfig(f.config, s.getenv, nil)
	if err != nil {
		return err
	}
	k := rc.Kafka
	k.Brokers = f.brokers
	d, err := k.Dialer()
	if err != nil {
		return usagef("%v", err)
	}
	if err := checkGenTopics(ctx, &k, d, f.topicBookings, f.topicActivity); err != nil {
		return err
	}
	w := gen.NewWriter(f.brokers, genBatch)
	w.Transport = transport(d)
	defer w.Close()

	batch := genBatch
	if f.rate > 0 {
		// At least 20 writes a second, so the pace is smooth.
		batch = max(1, min(genBatch, int(f.rate/20)))
	}
	var (
		rec     gen.Record
		mb      gen.MessageBatch
		counts  [2]int64
		sent    int64
		started = time.Now()
	)
	topics := [2]string{gen.TopicBookings: f.topicBookings, gen.TopicActivity: f.topicActivity}
	for done := false; !done; {
		mb.Reset()
		for mb.Len() < batch {
			if !stream.Next(&rec) {
				done = true
				break
			}
			mb.Add(&rec)
		}
		msgs := mb.Messages(topics)
		if len(msgs) == 0 {
			break
		}
		if f.rate > 0 {
			due := started.Add(time.Duration(float64(sent) / f.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			if ctx.Err() != nil {
				break
			}
			return explainGenWriteError(&k, err)
		}
		for _, t := range mb.Topics() {
			counts[t]++
		}
		sent += int64(len(msgs))
	}
	if err := w.Close(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("gen: close producer: %w", err)
	}
	w.Transport.(*kafka.Transport).CloseIdleConnections()
	st := stream.Stats()
	verb := "produced"
	if ctx.Err() != nil {
		verb = "interrupted after producing"
	}
	elapsed := time.Since(started)
	fmt.Fprintf(s.err, "gen: %s %d records (%d malformed, %d generated) for %d members, %s to %s, to %s: %s %d, %s %d; %.0f records/s\n",
		verb, sent, st.Bad, st.Records, st.Members, operators.FormatTime(st.First), operators.FormatTime(st.Last),
		strings.Join(f.brokers, ","), f.topicBookings, counts[gen.TopicBookings], f.topicActivity, counts[gen.TopicActivity],
		float64(sent)/max(elapsed.Seconds(), 1e-9))
	return nil
}

// checkGenTopics fails early, and plainly, when the brokers cannot be
// reached (or refuse TLS or SASL) or an input topic does not exist. d nil
// dials plain TCP.
func checkGenTopics(ctx context.Context, k *KafkaConfig, d *kafka.Dialer, topics ...string) error {
	if d == nil {
		d = &kafka.Dialer{Timeout: brokerCheckTimeout}
	}
	var errs []string
	for _, b := range k.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.ApiVersions() // TLS 1.3 reports a refused client certificate on the first read
			if err != nil {
				conn.Close()
			}
		}
		if err != nil {
			if hint, ok := k.explainConnectError(err); ok {
				return fmt.Errorf("gen: --brokers %s: %s: %w", b, hint, err)
			}
			errs = append(errs, fmt.Sprintf("%s: %v", b, err))
			continue
		}
		defer conn.Close()
		for _, t := range topics {
			parts, err := conn.ReadPartitions(t)
			if err == nil && len(parts) == 0 {
				err = errors.New("no partitions")
			}
			if err != nil {
				return fmt.Errorf("gen: topic %q on %s: %w; create the input topics first (churnflow broker creates them; in a cluster, kafka-topics.sh --create with the same partition count for both)", t, b, err)
			}
		}
		return nil
	}
	return fmt.Errorf("gen: cannot reach any broker of --brokers (%s); check the addresses and that Kafka is running (for development: churnflow broker)", strings.Join(errs, "; "))
}

func explainGenWriteError(k *KafkaConfig, err error) error {
	brokers := k.Brokers
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				err = fmt.Errorf("%d of %d messages failed, first: %w", we.Count(), len(we), e)
				break
			}
		}
	}
	if hint, ok := k.explainSecurityError(err); ok {
		return fmt.Errorf("gen: produce to %s: %s: %w", strings.Join(brokers, ","), hint, err)
	}
	return fmt.Errorf("gen: produce to %s: %w", strings.Join(brokers, ","), err)
}

// formatPurchases writes purchase parameters as --purchase-params takes them.
func formatPurchases(p gen.BGNBD) string {
	return strconv.FormatFloat(p.R, 'g', -1, 64) + "," + strconv.FormatFloat(p.Alpha, 'g', -1, 64) + "," +
		strconv.FormatFloat(p.A, 'g', -1, 64) + "," + strconv.FormatFloat(p.B, 'g', -1, 64)
}

// genPurchases applies --purchase-model, --purchase-params and --model to
// the generator's default purchase parameters.
func genPurchases(cmd *cobra.Command, f *genFlags, def gen.BGNBD) (gen.BGNBD, error) {
	if f.model != "" {
		if cmd.Flags().Changed("purchase-model") || cmd.Flags().Changed("purchase-params") {
			return def, usagef("--model: give either a model file or --purchase-model and --purchase-params, not both")
		}
		m, err := readModelFile("--model", f.model)
		if err != nil {
			return def, err
		}
		pm, err := m.Purchase()
		if err != nil {
			return def, usagef("--model %s: %v", f.model, err)
		}
		p, err := gen.PurchasesFromModel(pm, m.Unit)
		if err != nil {
			return def, usagef("--model %s: %v", f.model, err)
		}
		return p, nil
	}
	p := def
	if f.purchaseParams != "" {
		parts := strings.Split(f.purchaseParams, ",")
		var v [4]float64
		ok := len(parts) == 4
		for i := 0; ok && i < 4; i++ {
			x, err := strconv.ParseFloat(strings.TrimSpace(parts[i]), 64)
			ok = err == nil && x > 0 && !math.IsInf(x, 0)
			v[i] = x
		}
		if !ok {
			return def, usagef("--purchase-params: %q; give four positive numbers r,alpha,a,b with alpha in days (example: %s)", f.purchaseParams, formatPurchases(def))
		}
		p = gen.BGNBD{R: v[0], Alpha: v[1], A: v[2], B: v[3]}
	}
	p.Modified = f.purchaseModel == model.NameMBGNBD
	return p, nil
}
