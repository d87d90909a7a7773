package io.churnflow.peer;

import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/** Process-wide counters, summed over stream threads. */
final class Stats {
    static final LongAdder RECORDS = new LongAdder(); // every record the processor saw
    static final LongAdder REJECTED = new LongAdder();
    static final LongAdder IGNORED_ERASED = new LongAdder();
    static final LongAdder TIMERS_FIRED = new LongAdder();
    static final LongAdder SCANS = new LongAdder(); // punctuations that scanned the timers index
    static final LongAdder DORMANCY = new LongAdder();
    static final LongAdder RETENTION = new LongAdder();
    private static final ConcurrentHashMap<String, LongAdder> REASONS = new ConcurrentHashMap<>();

    private Stats() {
    }

    static void reject(String reason) {
        REJECTED.increment();
        REASONS.computeIfAbsent(reason, r -> new LongAdder()).increment();
    }

    static String summary() {
        Map<String, Long> reasons = new TreeMap<>();
        REASONS.forEach((k, v) -> reasons.put(k, v.sum()));
        return "records=" + RECORDS.sum() + " rejected=" + REJECTED.sum() + " " + reasons
            + " ignored_erased=" + IGNORED_ERASED.sum() + " timers_fired=" + TIMERS_FIRED.sum() + " index_scans=" + SCANS.sum()
            + " dormancy_alerts=" + DORMANCY.sum() + " retention_alerts=" + RETENTION.sum();
    }
}
