package io.churnflow.peer;

/**
 * One input record, decoded. Only what dormancy and frequency decline read is
 * kept: the type, the member, the event time, the hash of the event id (a
 * booking) or of booking_id (a cancellation). A record churnflow would
 * dead-letter carries {@link #reject}, the reason code churnflow uses.
 */
final class Event {
    // Event types, as churnflow's operators.EventType (the ones the rules read).
    static final int OTHER = 0;
    static final int BOOKING = 1;
    static final int CANCELLATION = 2;
    static final int ENROLMENT = 3;
    static final int TIER_CHANGE = 10;
    static final int MEMBER_DELETED = 12;

    String reject; // null: valid
    boolean checked; // the record-level checks (topic, key, future) ran

    int type;
    String memberId;
    long occurredAt; // Unix seconds
    long idHash; // FNV-1a 64 of event_id
    long bookingHash; // FNV-1a 64 of booking_id (cancellations)

    static Event rejected(String reason) {
        Event e = new Event();
        e.reject = reason;
        return e;
    }

    boolean isBookingTopic() {
        return type == BOOKING || type == CANCELLATION;
    }

    /**
     * The checks churnflow's partition worker makes after decoding
     * (pipeline/worker.go, validate): the topic, the key, the future. Runs once.
     */
    void check(boolean onBookingsTopic, String key, long nowSec, long maxFutureSec) {
        if (checked) {
            return;
        }
        checked = true;
        if (reject != null) {
            return;
        }
        if (onBookingsTopic != isBookingTopic()) {
            reject = "wrong_topic";
        } else if (key == null || !key.equals(memberId)) {
            reject = "key_mismatch";
        } else if (occurredAt > nowSec + maxFutureSec) {
            reject = "future_timestamp";
        }
    }
}
