package io.churnflow.peer;

import java.io.PrintStream;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.LogAndContinueExceptionHandler;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.state.Stores;

/**
 * churnflow's Kafka Streams peer: dormancy and frequency decline over the
 * bookings and activity topics, for the benchmark harness. Prints
 * "PROGRESS records epoch_ms" every 100 ms, "READY" once running, "DONE
 * records" after a clean close on SIGTERM. See README.md.
 */
public final class Main {
    private static final PrintStream OUT = System.out;
    private static final Object PRINT = new Object();

    private static final String USAGE = String.join("\n",
        "usage: java -jar churnflow-kstreams-peer.jar --bootstrap H:P --application-id ID",
        "         --bookings TOPIC --activity TOPIC --alerts TOPIC --state-dir DIR",
        "         [--dormancy-days 90] [--lateness-seconds 0] [--recent-days 90] [--baseline-days 365]",
        "         [--decline-ratio 0.5] [--min-baseline-bookings 4] [--cooldown-days 30]",
        "         [--tombstone-days 30] [--max-future-seconds 86400] [--max-event-bytes 65536]",
        "         [--tiers base,silver,gold,platinum] [--punctuate-seconds 60]",
        "         [--threads 1] [--commit-interval-ms 1000] [--changelog true|false]");

    private static final List<String> FLAGS = Arrays.asList("bootstrap", "application-id", "bookings", "activity",
        "alerts", "state-dir", "dormancy-days", "lateness-seconds", "recent-days", "baseline-days", "decline-ratio",
        "min-baseline-bookings", "cooldown-days", "tombstone-days", "max-future-seconds", "max-event-bytes", "tiers",
        "punctuate-seconds", "threads", "commit-interval-ms", "changelog");

    private Main() {
    }

    static void println(String line) {
        synchronized (PRINT) {
            OUT.println(line);
            OUT.flush();
        }
    }

    static Map<String, String> parse(String[] args) {
        Map<String, String> m = new HashMap<>();
        for (int k = 0; k < args.length; k++) {
            String a = args[k];
            if (a.equals("-h") || a.equals("--help")) {
                System.err.println(USAGE);
                System.exit(0);
            }
            if (!a.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + a);
            }
            String name = a.substring(2), val;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                val = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else {
                if (k + 1 >= args.length) {
                    throw new IllegalArgumentException("--" + name + " needs a value");
                }
                val = args[++k];
            }
            if (!FLAGS.contains(name)) {
                throw new IllegalArgumentException("unknown flag --" + name);
            }
            m.put(name, val);
        }
        for (String req : new String[] {"bootstrap", "application-id", "bookings", "activity", "alerts", "state-dir"}) {
            if (!m.containsKey(req) || m.get(req).isBlank()) {
                throw new IllegalArgumentException("--" + req + " is required");
            }
        }
        return m;
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> f;
        try {
            f = parse(args);
        } catch (IllegalArgumentException ex) {
            System.err.println("churnflow-kstreams-peer: " + ex.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        String bootstrap = f.get("bootstrap");
        String bookings = f.get("bookings"), activity = f.get("activity"), alerts = f.get("alerts");
        long dormantAfter = Math.round(Double.parseDouble(f.getOrDefault("dormancy-days", "90")) * 86400);
        long lateness = Long.parseLong(f.getOrDefault("lateness-seconds", "0"));
        int recent = Integer.parseInt(f.getOrDefault("recent-days", "90"));
        int baseline = Integer.parseInt(f.getOrDefault("baseline-days", "365"));
        double ratio = Double.parseDouble(f.getOrDefault("decline-ratio", "0.5"));
        int minBaseline = Integer.parseInt(f.getOrDefault("min-baseline-bookings", "4"));
        long cooldown = Math.round(Double.parseDouble(f.getOrDefault("cooldown-days", "30")) * 86400);
        long tombstone = Math.round(Double.parseDouble(f.getOrDefault("tombstone-days", "30")) * 86400);
        long maxFuture = Long.parseLong(f.getOrDefault("max-future-seconds", "86400"));
        int maxBytes = Integer.parseInt(f.getOrDefault("max-event-bytes", String.valueOf(EventDecoder.DEFAULT_MAX_BYTES)));
        Set<String> tiers = new HashSet<>(Arrays.asList(f.getOrDefault("tiers", "base,silver,gold,platinum").split(",")));
        long punctuateMs = Math.max(1, Math.round(Double.parseDouble(f.getOrDefault("punctuate-seconds", "60")) * 1000));
        int threads = Integer.parseInt(f.getOrDefault("threads", "1"));
        long commitMs = Long.parseLong(f.getOrDefault("commit-interval-ms", "1000"));
        boolean changelog = Boolean.parseBoolean(f.getOrDefault("changelog", "true"));
        if (dormantAfter < 3600 || lateness < 0 || recent < 1 || baseline < 1 || ratio < 0 || ratio > 1 || threads < 1) {
            System.err.println("churnflow-kstreams-peer: a flag is out of range");
            System.exit(2);
        }

        ensureAlertsTopic(bootstrap, bookings, activity, alerts);

        Rules rules = new Rules(dormantAfter, recent, baseline, ratio, minBaseline, cooldown, tombstone);
        EventSerde.EventDeserializer valueDeser = new EventSerde.EventDeserializer(maxBytes, tiers);
        EventSerde.OccurredAt extractor = new EventSerde.OccurredAt(bookings, maxFuture);
        Topology topo = new Topology();
        topo.addSource(Topology.AutoOffsetReset.EARLIEST, "bookings", extractor, Serdes.String().deserializer(),
            valueDeser, bookings);
        topo.addSource(Topology.AutoOffsetReset.EARLIEST, "activity", extractor, Serdes.String().deserializer(),
            valueDeser, activity);
        topo.addProcessor("churn", () -> new ChurnProcessor(rules, lateness, punctuateMs, bookings, maxFuture),
            "bookings", "activity");
        // Caching on (as the DSL has it): reads of hot members and the
        // changelog writes are absorbed until the commit.
        var memberStore = Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(ChurnProcessor.MEMBERS),
            Serdes.String(), Serdes.ByteArray()).withCachingEnabled();
        var timerStore = Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(ChurnProcessor.TIMERS),
            Serdes.Bytes(), Serdes.ByteArray()).withCachingEnabled();
        if (!changelog) { // only for brokers that cannot host Kafka Streams' internal topics
            memberStore = memberStore.withLoggingDisabled();
            timerStore = timerStore.withLoggingDisabled();
        }
        topo.addStateStore(memberStore, "churn");
        topo.addStateStore(timerStore, "churn");
        topo.addSink("alerts", alerts, Serdes.String().serializer(), Serdes.String().serializer(), "churn");

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, f.get("application-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, f.get("state-dir"));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitMs);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG, LogAndContinueExceptionHandler.class);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        KafkaStreams streams = new KafkaStreams(topo, p);
        CountDownLatch stopped = new CountDownLatch(1);
        AtomicBoolean ready = new AtomicBoolean();
        AtomicBoolean failed = new AtomicBoolean();
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING && ready.compareAndSet(false, true)) {
                println("READY");
            }
            if (now == KafkaStreams.State.ERROR) {
                failed.set(true);
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(ex -> {
            System.err.println("churnflow-kstreams-peer: stream thread failed: " + ex);
            ex.printStackTrace();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });

        AtomicBoolean running = new AtomicBoolean(true);
        Thread progress = new Thread(() -> {
            while (running.get()) {
                println("PROGRESS " + Stats.RECORDS.sum() + " " + System.currentTimeMillis());
                try {
                    Thread.sleep(100);
                } catch (InterruptedException ex) {
                    return;
                }
            }
        }, "progress");
        progress.setDaemon(true);

        AtomicBoolean closed = new AtomicBoolean();
        Runnable close = () -> {
            if (!closed.compareAndSet(false, true)) {
                return;
            }
            if (System.getenv("PEER_DEBUG_METRICS") != null) {
                streams.metrics().forEach((name, m) -> {
                    boolean thread = name.group().equals("stream-thread-metrics") && (name.name().endsWith("-total")
                        || name.name().endsWith("-latency-avg"));
                    boolean client = (name.group().equals("producer-metrics") || name.group().equals("consumer-fetch-manager-metrics"))
                        && !name.tags().containsKey("topic") && !name.tags().containsKey("partition")
                        && (name.name().endsWith("latency-avg") || name.name().equals("record-queue-time-avg")
                        || name.name().equals("batch-size-avg") || name.name().equals("records-per-request-avg")
                        || name.name().equals("request-total") || name.name().equals("fetch-total")
                        || name.name().equals("records-per-request-avg"));
                    if (thread || client) {
                        System.err.println("metric " + name.group() + " " + name.name() + " " + name.tags().get("client-id")
                            + " = " + m.metricValue());
                    }
                });
            }
            streams.close(Duration.ofSeconds(30));
            running.set(false);
            progress.interrupt();
            try {
                progress.join(1000);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
            System.err.println("churnflow-kstreams-peer: " + Stats.summary());
            println("DONE " + Stats.RECORDS.sum());
        };
        Thread hook = new Thread(() -> {
            close.run();
            stopped.countDown();
        }, "shutdown");
        Runtime.getRuntime().addShutdownHook(hook);

        progress.start();
        streams.start();
        stopped.await();
        if (failed.get()) {
            System.err.println("churnflow-kstreams-peer: Kafka Streams entered ERROR");
            System.exit(1); // runs the hook: close, DONE
        }
    }

    /**
     * Checks the input topics (Metadata API, through a consumer: some
     * Kafka-protocol brokers answer Admin.describeTopics badly) and creates
     * the alerts topic, with as many partitions as the inputs, if missing.
     */
    static void ensureAlertsTopic(String bootstrap, String bookings, String activity, String alerts) throws Exception {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        int nb, na;
        boolean haveAlerts;
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            Map<String, List<PartitionInfo>> topics = c.listTopics(Duration.ofSeconds(30));
            if (!topics.containsKey(bookings) || !topics.containsKey(activity)) {
                System.err.println("churnflow-kstreams-peer: input topic " + (topics.containsKey(bookings) ? activity : bookings)
                    + " does not exist on " + bootstrap);
                System.exit(2);
            }
            nb = topics.get(bookings).size();
            na = topics.get(activity).size();
            haveAlerts = topics.containsKey(alerts);
        }
        if (nb != na) {
            System.err.println("churnflow-kstreams-peer: " + bookings + " has " + nb + " partitions and " + activity
                + " " + na + "; they must be co-partitioned");
            System.exit(2);
        }
        if (haveAlerts) {
            return;
        }
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(alerts, Optional.of(nb), Optional.empty())))
                .all().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException ex) {
            if (!(ex.getCause() instanceof TopicExistsException) && !alertsTopicExists(cp, alerts)) {
                throw ex; // (a broker's malformed answer is forgiven if the topic is there)
            }
        }
    }

    private static boolean alertsTopicExists(Properties cp, String alerts) {
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            return c.listTopics(Duration.ofSeconds(30)).containsKey(alerts);
        }
    }
}
