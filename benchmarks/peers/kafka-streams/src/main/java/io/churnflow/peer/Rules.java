package io.churnflow.peer;

import java.util.List;

/**
 * Dormancy and frequency decline, as churnflow's operators.Engine computes
 * them (operators/engine.go: Apply, Advance, evaluate, nextDue; figures.go:
 * compute). The time model is the same: a member is evaluated at each of its
 * due times (from the timers index or before its next event) and at each
 * event; an event first advances the member to the event's time.
 */
final class Rules {
    static final int SECONDS_PER_DAY = 86400;

    /** An alert to emit. */
    record Alert(boolean dormancy, String memberId, long at) {
    }

    final long dormantAfter; // seconds
    final int recentDays, baselineDays;
    final double declineRatio;
    final int minBaselineBookings;
    final long cooldown; // seconds
    final long tombstone; // seconds
    final int horizonDays;

    Rules(long dormantAfter, int recentDays, int baselineDays, double declineRatio, int minBaselineBookings,
          long cooldown, long tombstone) {
        this.dormantAfter = dormantAfter;
        this.recentDays = recentDays;
        this.baselineDays = baselineDays;
        this.declineRatio = declineRatio;
        this.minBaselineBookings = minBaselineBookings;
        this.cooldown = cooldown;
        this.tombstone = tombstone;
        // churnflow: max(recent+baseline, frequency (365), 366).
        this.horizonDays = Math.max(recentDays + baselineDays, 366);
    }

    static int dayOf(long unix) {
        return (int) Math.floorDiv(unix, (long) SECONDS_PER_DAY);
    }

    /** Applies event e to s. Returns false when the member is erased and the event ignored. */
    boolean apply(MemberState s, Event e, List<Alert> out) {
        long t = e.occurredAt;
        advance(s, e.memberId, t, out);
        if (s.has(MemberState.DELETED)) {
            return false;
        }
        if (s.isNew()) {
            s.enrolled = t;
        }
        long now = Math.max(s.clock, t);
        s.clock = now;
        if (e.type == Event.MEMBER_DELETED) {
            long enrolled = s.enrolled;
            s.reset();
            s.clock = now;
            s.deletedAt = t;
            s.flags = MemberState.DELETED;
            s.enrolled = enrolled;
            s.due = nextDue(s);
            return true;
        }
        if (s.has(MemberState.DORMANT) && t >= s.dormantSince) {
            s.set(MemberState.DORMANT, false); // reactivated
            s.dormantSince = 0;
        }
        switch (e.type) {
            case Event.BOOKING:
                addBooking(s, e, now);
                break;
            case Event.CANCELLATION:
                cancelBooking(s, e.bookingHash);
                break;
            case Event.ENROLMENT:
                s.enrolled = t;
                break;
            default:
        }
        if (e.type != Event.BOOKING && (!s.has(MemberState.HAS_ACTIVITY) || t > s.lastActivity)) {
            s.lastActivity = t;
            s.set(MemberState.HAS_ACTIVITY, true);
        }
        evaluate(s, e.memberId, now, out);
        return true;
    }

    /** Evaluates s at each of its due times strictly before t (timers call it with the watermark). */
    void advance(MemberState s, String id, long t, List<Alert> out) {
        while (s.due != 0 && s.due < t && s.due > s.clock) {
            long d = s.due;
            if (s.has(MemberState.DELETED) && d >= s.deletedAt + tombstone) {
                s.reset(); // the tombstone expired: the member is new again
                return;
            }
            s.clock = d;
            evaluate(s, id, d, out);
        }
    }

    private void addBooking(MemberState s, Event e, long now) {
        long t = e.occurredAt;
        if (!s.has(MemberState.HAS_BOOKED)) {
            s.firstBooking = t;
            s.lastBooking = t;
            s.set(MemberState.HAS_BOOKED, true);
        } else {
            s.firstBooking = Math.min(s.firstBooking, t);
            s.lastBooking = Math.max(s.lastBooking, t);
        }
        s.bookings++;
        s.set(MemberState.RETENTION_DISARMED, false);
        int day = dayOf(t);
        int sec = (int) (t - (long) day * SECONDS_PER_DAY);
        int oldest = dayOf(now) - horizonDays + 1;
        if (day < oldest) {
            return; // older than every window: lifetime figures only
        }
        int i = s.n;
        while (i > 0 && s.at(i - 1) > t) {
            i--;
        }
        s.insert(i, day, sec, e.idHash);
        if (s.n > MemberState.MAX_BOOKINGS_HELD) {
            s.remove(0, 1);
        }
    }

    private boolean cancelBooking(MemberState s, long h) {
        int i = -1;
        for (int j = s.n - 1; j >= 0; j--) {
            if (s.hash[j] == h) {
                i = j;
                break;
            }
        }
        if (i < 0) {
            return false; // unmatched: still counts as activity
        }
        long removedAt = s.at(i);
        s.remove(i, 1);
        s.bookings--;
        if (s.bookings == 0) {
            s.set(MemberState.HAS_BOOKED, false);
            s.firstBooking = 0;
            s.lastBooking = 0;
            return true;
        }
        int n = s.n;
        if (removedAt == s.lastBooking) {
            s.lastBooking = n > 0 ? s.at(n - 1) : s.firstBooking;
        }
        if (removedAt == s.firstBooking && s.bookings == n && n > 0) {
            s.firstBooking = s.at(0);
        }
        return true;
    }

    private void evaluate(MemberState s, String id, long now, List<Alert> out) {
        if (s.has(MemberState.DELETED)) {
            s.due = nextDue(s);
            return;
        }
        prune(s, now);

        // Dormancy (churnflow with dormancy.min_value_score 0: every episode is alerted).
        if (!s.has(MemberState.DORMANT)) {
            long since = s.lastSeen() + dormantAfter;
            if (now >= since) {
                s.set(MemberState.DORMANT, true);
                s.dormantSince = since;
                out.add(new Alert(true, id, since));
            }
        }

        // Frequency decline (churnflow also requires a valuable member and has
        // two more reasons; see README.md).
        if (s.has(MemberState.HAS_BOOKED) && !s.has(MemberState.RETENTION_DISARMED)
            && (s.retentionAt == 0 || now >= s.retentionAt + cooldown) && declining(s, now)) {
            s.retentionAt = now;
            s.set(MemberState.RETENTION_DISARMED, true);
            out.add(new Alert(false, id, now));
        }
        s.due = nextDue(s);
    }

    boolean declining(MemberState s, long now) {
        int today = dayOf(now);
        int recentFrom = today - recentDays + 1;
        int baselineFrom = recentFrom - baselineDays;
        int recent = 0, baseline = 0;
        for (int k = 0; k < s.n; k++) {
            int d = s.day[k];
            if (d >= recentFrom) {
                recent++;
            } else if (d >= baselineFrom) {
                baseline++;
            }
        }
        if (baseline < minBaselineBookings) {
            return false;
        }
        double expected = (double) baseline * (double) recentDays / (double) baselineDays;
        return (double) recent < declineRatio * expected;
    }

    private void prune(MemberState s, long now) {
        int oldest = dayOf(now) - horizonDays + 1;
        int k = 0;
        while (k < s.n && s.day[k] < oldest) {
            k++;
        }
        if (k > 0) {
            s.remove(0, k);
        }
    }

    /**
     * The earliest instant after s.clock at which dormancy or frequency
     * decline can change with no event: the dormancy deadline, a booking
     * leaving the recent or baseline window, the cool-down ending, or a
     * tombstone expiring. 0 means never.
     */
    long nextDue(MemberState s) {
        long clock = s.clock;
        long[] best = {0};
        if (s.has(MemberState.DELETED)) {
            consider(best, clock, s.deletedAt + tombstone);
            return best[0] == 0 ? clock + 1 : best[0];
        }
        if (!s.has(MemberState.DORMANT)) {
            consider(best, clock, s.lastSeen() + dormantAfter);
        }
        int today = dayOf(clock);
        for (int w : new int[] {recentDays, recentDays + baselineDays}) {
            int lo = 0, hi = s.n;
            while (lo < hi) {
                int m = (lo + hi) >>> 1;
                if (s.day[m] + w <= today) {
                    lo = m + 1;
                } else {
                    hi = m;
                }
            }
            if (lo < s.n) {
                int d = s.day[lo] + w;
                if (d > today) {
                    consider(best, clock, (long) d * SECONDS_PER_DAY);
                }
            }
        }
        if (s.has(MemberState.HAS_BOOKED) && !s.has(MemberState.RETENTION_DISARMED) && s.retentionAt != 0) {
            consider(best, clock, s.retentionAt + cooldown);
        }
        return best[0];
    }

    private static void consider(long[] best, long clock, long t) {
        if (t > clock && (best[0] == 0 || t < best[0])) {
            best[0] = t;
        }
    }
}
