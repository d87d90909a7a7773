package io.churnflow.peer;

import java.nio.ByteBuffer;

/**
 * What the peer keeps per member: the subset of churnflow's
 * operators.MemberState that dormancy and frequency decline read, with the
 * same meaning. Times are Unix seconds. Encoded with fixed-width fields.
 */
final class MemberState {
    static final int HAS_BOOKED = 1;
    static final int HAS_ACTIVITY = 2;
    static final int DORMANT = 4;
    static final int RETENTION_DISARMED = 8;
    static final int DELETED = 16;

    static final int MAX_BOOKINGS_HELD = 1024; // churnflow's maxBookingsHeld

    long clock; // time of the last evaluation
    long due; // when the member must next be evaluated; 0: never
    long enrolled; // enrolment, or first event seen
    long firstBooking, lastBooking; // valid if HAS_BOOKED
    long lastActivity; // valid if HAS_ACTIVITY
    long dormantSince; // valid if DORMANT
    long retentionAt; // last retention alert, 0 if none
    long deletedAt; // valid if DELETED
    int bookings; // lifetime bookings, net of cancellations
    int flags;

    // Booking history, ascending by time: day, second of day, event id hash.
    int n;
    int[] day = new int[4];
    int[] sec = new int[4];
    long[] hash = new long[4];

    boolean has(int f) {
        return (flags & f) != 0;
    }

    void set(int f, boolean on) {
        flags = on ? flags | f : flags & ~f;
    }

    boolean isNew() {
        return enrolled == 0 && flags == 0 && clock == 0;
    }

    long at(int k) {
        return (long) day[k] * 86400L + sec[k];
    }

    /** The later of the last booking and the last activity (churnflow's LastSeen). */
    long lastSeen() {
        long t = enrolled;
        if (has(HAS_BOOKED) && lastBooking > t) {
            t = lastBooking;
        }
        if (has(HAS_ACTIVITY) && lastActivity > t) {
            t = lastActivity;
        }
        return t;
    }

    void reset() {
        clock = due = enrolled = firstBooking = lastBooking = lastActivity = dormantSince = retentionAt = deletedAt = 0;
        bookings = flags = n = 0;
    }

    void insert(int pos, int d, int s, long h) {
        if (n == day.length) {
            int cap = n * 2;
            day = java.util.Arrays.copyOf(day, cap);
            sec = java.util.Arrays.copyOf(sec, cap);
            hash = java.util.Arrays.copyOf(hash, cap);
        }
        System.arraycopy(day, pos, day, pos + 1, n - pos);
        System.arraycopy(sec, pos, sec, pos + 1, n - pos);
        System.arraycopy(hash, pos, hash, pos + 1, n - pos);
        day[pos] = d;
        sec[pos] = s;
        hash[pos] = h;
        n++;
    }

    void remove(int from, int count) {
        System.arraycopy(day, from + count, day, from, n - from - count);
        System.arraycopy(sec, from + count, sec, from, n - from - count);
        System.arraycopy(hash, from + count, hash, from, n - from - count);
        n -= count;
    }

    private static final int HEAD = 1 + 4 + 9 * 8 + 4 + 4;

    byte[] encode() {
        ByteBuffer bb = ByteBuffer.allocate(HEAD + n * 16);
        bb.put((byte) 1);
        bb.putInt(flags);
        bb.putLong(clock).putLong(due).putLong(enrolled).putLong(firstBooking).putLong(lastBooking)
            .putLong(lastActivity).putLong(dormantSince).putLong(retentionAt).putLong(deletedAt);
        bb.putInt(bookings);
        bb.putInt(n);
        for (int k = 0; k < n; k++) {
            bb.putInt(day[k]).putInt(sec[k]).putLong(hash[k]);
        }
        return bb.array();
    }

    static MemberState decode(byte[] data) {
        MemberState s = new MemberState();
        if (data == null) {
            return s;
        }
        ByteBuffer bb = ByteBuffer.wrap(data);
        if (bb.get() != 1) {
            throw new IllegalStateException("unknown member state version");
        }
        s.flags = bb.getInt();
        s.clock = bb.getLong();
        s.due = bb.getLong();
        s.enrolled = bb.getLong();
        s.firstBooking = bb.getLong();
        s.lastBooking = bb.getLong();
        s.lastActivity = bb.getLong();
        s.dormantSince = bb.getLong();
        s.retentionAt = bb.getLong();
        s.deletedAt = bb.getLong();
        s.bookings = bb.getInt();
        int n = bb.getInt();
        int cap = Math.max(4, n + 1);
        s.day = new int[cap];
        s.sec = new int[cap];
        s.hash = new long[cap];
        for (int k = 0; k < n; k++) {
            s.day[k] = bb.getInt();
            s.sec[k] = bb.getInt();
            s.hash[k] = bb.getLong();
        }
        s.n = n;
        return s;
    }
}
