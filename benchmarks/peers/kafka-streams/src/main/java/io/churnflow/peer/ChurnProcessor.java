package io.churnflow.peer;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;

import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The peer's one processor: both input topics of a partition come here (one
 * task per partition pair). Per event it reads the member's state, applies
 * the rules, writes the state and moves the member's entry in the timers
 * index; a stream-time punctuator fires the members whose due time is before
 * the watermark (stream time − lateness), visiting only those (a range scan
 * of the index from the earliest possible due time).
 */
final class ChurnProcessor implements Processor<String, Event, String, String> {
    static final String MEMBERS = "members";
    static final String TIMERS = "timers";
    private static final byte[] EMPTY = new byte[0];
    private static final int SCAN_CHUNK = 10_000;
    private static final long LOOK_AHEAD = 86_400; // seconds past the watermark a scan also reads
    private static final DateTimeFormatter RFC3339 =
        DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss'Z'").withZone(ZoneOffset.UTC);
    private static final DateTimeFormatter DAY = DateTimeFormatter.ofPattern("uuuu-MM-dd").withZone(ZoneOffset.UTC);

    private final Rules rules;
    private final long lateness;
    private final long punctuateMs;
    private final String bookingsTopic;
    private final long maxFuture;

    private ProcessorContext<String, String> ctx;
    private KeyValueStore<String, byte[]> members;
    private KeyValueStore<Bytes, byte[]> timers;
    private final List<Rules.Alert> out = new ArrayList<>();
    // Every timers-index entry of this task has a due time >= low (a lower
    // bound, exact after a full scan): the punctuator does nothing while the
    // watermark is not past it, and scans from it, not from the index start
    // (which would walk over the tombstones of fired entries).
    private long low = Long.MIN_VALUE;

    ChurnProcessor(Rules rules, long lateness, long punctuateMs, String bookingsTopic, long maxFuture) {
        this.rules = rules;
        this.lateness = lateness;
        this.punctuateMs = punctuateMs;
        this.bookingsTopic = bookingsTopic;
        this.maxFuture = maxFuture;
    }

    @Override
    public void init(ProcessorContext<String, String> context) {
        ctx = context;
        members = context.getStateStore(MEMBERS);
        timers = context.getStateStore(TIMERS);
        ctx.schedule(Duration.ofMillis(punctuateMs), PunctuationType.STREAM_TIME, this::punctuate);
    }

    @Override
    public void process(Record<String, Event> rec) {
        Stats.RECORDS.increment();
        Event e = rec.value();
        if (e == null) {
            Stats.reject("invalid_json");
            return;
        }
        if (!e.checked) {
            String topic = ctx.recordMetadata().map(m -> m.topic()).orElse("");
            e.check(topic.equals(bookingsTopic), rec.key(), System.currentTimeMillis() / 1000, maxFuture);
        }
        if (e.reject != null) {
            Stats.reject(e.reject);
            return;
        }
        byte[] old = members.get(e.memberId);
        MemberState s = MemberState.decode(old);
        long prevDue = s.due;
        out.clear();
        if (!rules.apply(s, e, out)) {
            Stats.IGNORED_ERASED.increment();
        }
        save(e.memberId, s, old != null, prevDue);
        emit();
    }

    private void save(String id, MemberState s, boolean found, long prevDue) {
        if (s.isNew()) {
            if (found) {
                members.delete(id);
                if (prevDue != 0) {
                    timers.delete(timerKey(prevDue, id));
                }
            }
            return;
        }
        members.put(id, s.encode());
        if (found && prevDue == s.due) {
            return;
        }
        if (found && prevDue != 0) {
            timers.delete(timerKey(prevDue, id));
        }
        if (s.due != 0) {
            timers.put(timerKey(s.due, id), EMPTY);
            low = Math.min(low, s.due);
        }
    }

    /** Fires the members due before the watermark. */
    private void punctuate(long streamTimeMs) {
        if (streamTimeMs < 0) {
            return;
        }
        long wm = Math.floorDiv(streamTimeMs, 1000L) - lateness;
        if (wm <= low) {
            return;
        }
        Stats.SCANS.increment();
        List<Bytes> due = new ArrayList<>();
        for (int round = 0; round < 100_000; round++) {
            due.clear();
            // A bounded range: the caching layer copies the cached keys of the
            // range, so an open-ended one would cost O(index) per scan. The
            // look-ahead finds the next due time (the new lower bound).
            long ahead = wm > Long.MAX_VALUE - LOOK_AHEAD ? Long.MAX_VALUE : wm + LOOK_AHEAD;
            long beyond = ahead;
            try (KeyValueIterator<Bytes, byte[]> it = timers.range(Bytes.wrap(timeKey(low)), Bytes.wrap(timeKey(ahead)))) {
                while (it.hasNext()) {
                    KeyValue<Bytes, byte[]> kv = it.next();
                    long d = dueOf(kv.key.get());
                    if (d >= wm) {
                        beyond = d;
                        break;
                    }
                    if (due.size() == SCAN_CHUNK) {
                        beyond = Long.MIN_VALUE; // more to do
                        break;
                    }
                    due.add(kv.key);
                }
            }
            boolean more = beyond == Long.MIN_VALUE;
            if (!more) {
                low = beyond; // exact: nothing else is left below wm
            }
            for (Bytes k : due) {
                byte[] kb = k.get();
                long d = dueOf(kb);
                String id = new String(kb, 8, kb.length - 8, StandardCharsets.UTF_8);
                byte[] v = members.get(id);
                if (v == null) {
                    timers.delete(k);
                    continue;
                }
                MemberState s = MemberState.decode(v);
                if (s.due != d) {
                    timers.delete(k); // stale entry
                    continue;
                }
                out.clear();
                rules.advance(s, id, wm, out);
                Stats.TIMERS_FIRED.increment();
                save(id, s, true, d);
                emit();
            }
            if (!more) {
                return;
            }
        }
    }

    private void emit() {
        if (out.isEmpty()) {
            return;
        }
        long now = System.currentTimeMillis();
        for (Rules.Alert a : out) {
            StringBuilder sb = new StringBuilder(128);
            String at = RFC3339.format(Instant.ofEpochSecond(a.at()));
            if (a.dormancy()) {
                Stats.DORMANCY.increment();
                sb.append("{\"type\":\"dormancy\",\"member_id\":");
                jsonString(sb, a.memberId());
                sb.append(",\"at\":\"").append(at).append("\",\"alert_id\":");
                jsonString(sb, "dormancy:" + a.memberId() + ":" + DAY.format(Instant.ofEpochSecond(a.at())));
                sb.append('}');
            } else {
                Stats.RETENTION.increment();
                sb.append("{\"type\":\"retention\",\"member_id\":");
                jsonString(sb, a.memberId());
                sb.append(",\"at\":\"").append(at).append("\",\"reasons\":[\"frequency_decline\"],\"alert_id\":");
                jsonString(sb, "retention:" + a.memberId() + ":" + DAY.format(Instant.ofEpochSecond(a.at())));
                sb.append('}');
            }
            ctx.forward(new Record<>(a.memberId(), sb.toString(), now));
        }
        out.clear();
    }

    static void jsonString(StringBuilder sb, String s) {
        sb.append('"');
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        sb.append('"');
    }

    /** Big-endian, sign-flipped due time: byte order is time order. */
    static byte[] timeKey(long due) {
        return ByteBuffer.allocate(8).putLong(due ^ Long.MIN_VALUE).array();
    }

    static Bytes timerKey(long due, String id) {
        byte[] idb = id.getBytes(StandardCharsets.UTF_8);
        ByteBuffer bb = ByteBuffer.allocate(8 + idb.length);
        bb.putLong(due ^ Long.MIN_VALUE).put(idb);
        return Bytes.wrap(bb.array());
    }

    static long dueOf(byte[] key) {
        return ByteBuffer.wrap(key, 0, 8).getLong() ^ Long.MIN_VALUE;
    }
}
