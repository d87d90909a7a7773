package io.churnflow.peer;

import java.nio.charset.StandardCharsets;
import java.util.Set;

/**
 * A strict, allocation-light JSON event decoder that accepts and rejects
 * exactly what churnflow's operators.Decoder does (operators/decode.go,
 * operators/jsonscan.go): one pass, RFC 8259, a known field at most once,
 * the same field checks and limits. A decoder is not thread-safe; the
 * deserializer keeps one per thread.
 */
final class EventDecoder {
    static final int DEFAULT_MAX_BYTES = 64 << 10;
    private static final int MAX_ID_LEN = 128;
    private static final int MAX_TEXT_LEN = 256;
    private static final int MAX_NESTING = 64;
    private static final long MIN_TIME = -62135596800L;
    private static final long MAX_TIME = 253402300799L;

    // Known keys (decode.go knownKeys).
    private static final String[] KNOWN = {"event_id", "type", "member_id", "occurred_at", "amount", "currency",
        "distance_km", "segments", "discount", "product", "channel", "origin", "destination",
        "trip_start", "trip_end", "trip_id", "booking_id", "tier", "region", "account_manager",
        "points", "points_balance"};
    private static final byte[][] KNOWN_BYTES = new byte[KNOWN.length][];
    static {
        for (int i = 0; i < KNOWN.length; i++) {
            KNOWN_BYTES[i] = KNOWN[i].getBytes(StandardCharsets.US_ASCII);
        }
    }
    private static final int K_EVENT_ID = 0, K_TYPE = 1, K_MEMBER = 2, K_OCCURRED_AT = 3, K_AMOUNT = 4,
        K_CURRENCY = 5, K_DISTANCE = 6, K_SEGMENTS = 7, K_DISCOUNT = 8, K_TRIP_START = 13, K_TRIP_END = 14,
        K_BOOKING_ID = 16, K_TIER = 17, K_POINTS = 20, K_POINTS_BALANCE = 21;

    private static final String[] TYPE_NAMES = {"other", "booking", "cancellation", "enrolment", "profile_update",
        "login", "search", "app_open", "points_earned", "redemption", "tier_change", "complaint", "member_deleted"};

    private final int maxBytes;
    private final Set<String> tiers; // null: any

    // Per-record scratch.
    private byte[] b;
    private int i;
    private byte[] sbuf = new byte[256]; // unescaped string
    private int slen;
    private String fieldErr;
    private String dupErr;

    EventDecoder(int maxBytes, Set<String> tiers) {
        this.maxBytes = maxBytes > 0 ? maxBytes : DEFAULT_MAX_BYTES;
        this.tiers = tiers;
    }

    /** Decodes one record; never throws. */
    Event decode(byte[] data) {
        try {
            return decode0(data);
        } catch (RuntimeException ex) {
            return Event.rejected("invalid_json");
        } finally {
            b = null;
        }
    }

    private Event decode0(byte[] data) {
        if (data == null || data.length == 0) {
            return Event.rejected("invalid_json");
        }
        if (data.length > maxBytes) {
            return Event.rejected("oversize");
        }
        b = data;
        i = 0;
        fieldErr = null;
        dupErr = null;
        ws();
        if (peek() != '{') {
            return Event.rejected("invalid_json");
        }
        i++;
        int seen = 0;
        Event e = new Event();
        String eventId = null, type = null, member = null, bookingId = null, tier = null;
        boolean hasTime = false;
        int tripStart = 0, tripEnd = 0;
        boolean hasTripStart = false, hasTripEnd = false;
        ws();
        if (!consume('}')) {
            for (;;) {
                ws();
                if (peek() != '"') {
                    return Event.rejected("invalid_json");
                }
                if (!str()) {
                    return Event.rejected("invalid_json");
                }
                int k = keyIndex();
                ws();
                if (!consume(':')) {
                    return Event.rejected("invalid_json");
                }
                ws();
                if (k >= 0 && (seen & (1 << k)) != 0) {
                    if (dupErr == null) {
                        dupErr = "invalid_json";
                    }
                    k = -1;
                } else if (k >= 0) {
                    seen |= 1 << k;
                }
                // field(): read known key k, or skip.
                if (k < 0) {
                    if (!skip(0)) {
                        return Event.rejected("invalid_json");
                    }
                } else if (peek() == 'n') {
                    if (!literal("null")) {
                        return Event.rejected("invalid_json");
                    }
                } else if (k == K_OCCURRED_AT || k == K_TRIP_START || k == K_TRIP_END) {
                    if (peek() != '"') {
                        if (!skip(0)) {
                            return Event.rejected("invalid_json");
                        }
                        fail("invalid_field");
                    } else {
                        if (!str()) {
                            return Event.rejected("invalid_json");
                        }
                        if (k == K_OCCURRED_AT) {
                            long t = parseRFC3339(sbuf, slen);
                            if (t == Long.MIN_VALUE) {
                                fail("invalid_field");
                            } else {
                                e.occurredAt = t;
                                hasTime = true;
                            }
                        } else {
                            long day = parseDate(sbuf, slen);
                            if (day == Long.MIN_VALUE) {
                                fail("invalid_field");
                            } else if (k == K_TRIP_START) {
                                tripStart = (int) day;
                                hasTripStart = true;
                            } else {
                                tripEnd = (int) day;
                                hasTripEnd = true;
                            }
                        }
                    }
                } else if (k == K_AMOUNT || k == K_DISTANCE || k == K_DISCOUNT || k == K_SEGMENTS || k == K_POINTS
                    || k == K_POINTS_BALANCE) {
                    int c = peek();
                    if (c != '-' && (c < '0' || c > '9')) {
                        if (!skip(0)) {
                            return Event.rejected("invalid_json");
                        }
                        fail("invalid_field");
                    } else {
                        int start = i;
                        if (!num()) {
                            return Event.rejected("invalid_json");
                        }
                        double x = Double.parseDouble(new String(b, start, i - start, StandardCharsets.US_ASCII));
                        checkNumber(k, x);
                    }
                } else { // string fields
                    if (peek() != '"') {
                        if (!skip(0)) {
                            return Event.rejected("invalid_json");
                        }
                        fail("invalid_field");
                    } else {
                        if (!str()) {
                            return Event.rejected("invalid_json");
                        }
                        int maxLen = MAX_TEXT_LEN;
                        boolean required = false;
                        if (k == K_EVENT_ID || k == K_MEMBER) {
                            maxLen = MAX_ID_LEN;
                            required = true;
                        } else if (k == K_TYPE) {
                            maxLen = 64;
                            required = true;
                        } else if (k == K_CURRENCY) {
                            maxLen = 3;
                        }
                        String problem = checkText(maxLen);
                        if (problem != null) {
                            if (!(slen == 0 && !required)) {
                                fail("invalid_field");
                            }
                        } else if (k == K_CURRENCY && !isCurrency()) {
                            fail("invalid_field");
                        } else {
                            switch (k) {
                                case K_EVENT_ID:
                                    eventId = "";
                                    e.idHash = fnv(sbuf, slen);
                                    break;
                                case K_TYPE:
                                    type = new String(sbuf, 0, slen, StandardCharsets.UTF_8);
                                    break;
                                case K_MEMBER:
                                    member = new String(sbuf, 0, slen, StandardCharsets.UTF_8);
                                    break;
                                case K_BOOKING_ID:
                                    bookingId = "";
                                    e.bookingHash = fnv(sbuf, slen);
                                    break;
                                case K_TIER:
                                    tier = new String(sbuf, 0, slen, StandardCharsets.UTF_8);
                                    break;
                                default:
                            }
                        }
                    }
                }
                ws();
                if (consume('}')) {
                    break;
                }
                if (!consume(',')) {
                    return Event.rejected("invalid_json");
                }
            }
        }
        ws();
        if (i != b.length) {
            return Event.rejected("invalid_json");
        }
        if (dupErr != null) {
            return Event.rejected(dupErr);
        }
        if (fieldErr != null) {
            return Event.rejected(fieldErr);
        }
        if (eventId == null || type == null || member == null || !hasTime) {
            return Event.rejected("missing_field");
        }
        if (hasTripStart && hasTripEnd && tripEnd < tripStart) {
            return Event.rejected("invalid_field");
        }
        e.type = Event.OTHER;
        for (int t = 1; t < TYPE_NAMES.length; t++) {
            if (TYPE_NAMES[t].equals(type)) {
                e.type = t;
                break;
            }
        }
        e.memberId = member;
        if (e.type == Event.CANCELLATION && bookingId == null) {
            return Event.rejected("missing_field");
        }
        if (e.type == Event.TIER_CHANGE && tier == null) {
            return Event.rejected("missing_field");
        }
        if (tier != null && tiers != null && !tiers.contains(tier)) {
            return Event.rejected("unknown_tier");
        }
        return e;
    }

    private void fail(String reason) {
        if (fieldErr == null) {
            fieldErr = reason;
        }
    }

    private void checkNumber(int k, double x) {
        if (Double.isNaN(x) || Double.isInfinite(x) || x < 0) {
            fail("invalid_field");
            return;
        }
        double hi;
        boolean whole = false;
        switch (k) {
            case K_AMOUNT:
                hi = 1e12;
                break;
            case K_DISTANCE:
                hi = 1e6;
                break;
            case K_DISCOUNT:
                hi = 1.5;
                break;
            case K_SEGMENTS:
                hi = 1000;
                whole = true;
                break;
            default: // points, points_balance
                hi = 1e15;
                whole = true;
        }
        if (x > hi || (whole && x != Math.floor(x))) {
            fail("invalid_field");
        }
    }

    private String checkText(int maxLen) {
        if (slen == 0) {
            return "empty";
        }
        if (slen > maxLen) {
            return "long";
        }
        boolean ascii = true;
        for (int j = 0; j < slen; j++) {
            int c = sbuf[j] & 0xff;
            if (c < 0x20 || c == 0x7f) {
                return "control";
            }
            ascii &= c < 0x80;
        }
        if (!ascii && !validUtf8(sbuf, slen)) {
            return "utf8";
        }
        return null;
    }

    private boolean isCurrency() {
        if (slen != 3) {
            return false;
        }
        for (int j = 0; j < 3; j++) {
            if (sbuf[j] < 'A' || sbuf[j] > 'Z') {
                return false;
            }
        }
        return true;
    }

    private int keyIndex() {
        outer:
        for (int k = 0; k < KNOWN_BYTES.length; k++) {
            byte[] kb = KNOWN_BYTES[k];
            if (kb.length != slen) {
                continue;
            }
            for (int j = 0; j < slen; j++) {
                if (kb[j] != sbuf[j]) {
                    continue outer;
                }
            }
            return k;
        }
        return -1;
    }

    /** FNV-1a 64 over bytes: churnflow's hashString. */
    static long fnv(byte[] s, int n) {
        long h = 0xcbf29ce484222325L;
        for (int j = 0; j < n; j++) {
            h ^= s[j] & 0xff;
            h *= 0x100000001b3L;
        }
        return h;
    }

    // ------------------------------------------------------------ scanner

    private void ws() {
        while (i < b.length) {
            byte c = b[i];
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                i++;
            } else {
                return;
            }
        }
    }

    private int peek() {
        return i < b.length ? b[i] & 0xff : 0;
    }

    private boolean consume(char c) {
        if (i < b.length && b[i] == c) {
            i++;
            return true;
        }
        return false;
    }

    private boolean literal(String lit) {
        int n = lit.length();
        if (b.length - i < n) {
            return false;
        }
        for (int j = 0; j < n; j++) {
            if (b[i + j] != lit.charAt(j)) {
                return false;
            }
        }
        i += n;
        return true;
    }

    private void put(int c) {
        if (slen == sbuf.length) {
            sbuf = java.util.Arrays.copyOf(sbuf, sbuf.length * 2);
        }
        sbuf[slen++] = (byte) c;
    }

    private void putRune(int r) {
        if (r < 0x80) {
            put(r);
        } else if (r < 0x800) {
            put(0xc0 | (r >> 6));
            put(0x80 | (r & 0x3f));
        } else if (r < 0x10000) {
            if (r >= 0xd800 && r <= 0xdfff) {
                r = 0xfffd;
            }
            put(0xe0 | (r >> 12));
            put(0x80 | ((r >> 6) & 0x3f));
            put(0x80 | (r & 0x3f));
        } else {
            put(0xf0 | (r >> 18));
            put(0x80 | ((r >> 12) & 0x3f));
            put(0x80 | ((r >> 6) & 0x3f));
            put(0x80 | (r & 0x3f));
        }
    }

    /** Reads a JSON string, unescaped, into sbuf[0:slen). */
    private boolean str() {
        slen = 0;
        if (!consume('"')) {
            return false;
        }
        for (;;) {
            if (i >= b.length) {
                return false;
            }
            int c = b[i] & 0xff;
            if (c == '"') {
                i++;
                return true;
            }
            if (c < 0x20) {
                return false;
            }
            if (c != '\\') {
                put(c);
                i++;
                continue;
            }
            i++;
            if (i >= b.length) {
                return false;
            }
            c = b[i++] & 0xff;
            switch (c) {
                case '"':
                case '\\':
                case '/':
                    put(c);
                    break;
                case 'b':
                    put('\b');
                    break;
                case 'f':
                    put('\f');
                    break;
                case 'n':
                    put('\n');
                    break;
                case 'r':
                    put('\r');
                    break;
                case 't':
                    put('\t');
                    break;
                case 'u': {
                    int r = hex4();
                    if (r < 0) {
                        return false;
                    }
                    if (r >= 0xd800 && r <= 0xdfff) {
                        int save = i;
                        if (literal("\\u")) {
                            int r2 = hex4();
                            if (r2 >= 0 && r >= 0xd800 && r < 0xdc00 && r2 >= 0xdc00 && r2 <= 0xdfff) {
                                putRune(0x10000 + ((r - 0xd800) << 10) + (r2 - 0xdc00));
                                break;
                            }
                        }
                        i = save;
                        r = 0xfffd;
                    }
                    putRune(r);
                    break;
                }
                default:
                    return false;
            }
        }
    }

    private int hex4() {
        if (b.length - i < 4) {
            return -1;
        }
        int r = 0;
        for (int j = 0; j < 4; j++) {
            int c = b[i + j];
            r <<= 4;
            if (c >= '0' && c <= '9') {
                r |= c - '0';
            } else if (c >= 'a' && c <= 'f') {
                r |= c - 'a' + 10;
            } else if (c >= 'A' && c <= 'F') {
                r |= c - 'A' + 10;
            } else {
                return -1;
            }
        }
        i += 4;
        return r;
    }

    private boolean digit() {
        return i < b.length && b[i] >= '0' && b[i] <= '9';
    }

    private boolean num() {
        consume('-');
        if (consume('0')) {
            // a single zero
        } else if (i < b.length && b[i] >= '1' && b[i] <= '9') {
            while (digit()) {
                i++;
            }
        } else {
            return false;
        }
        if (consume('.')) {
            int n = 0;
            while (digit()) {
                i++;
                n++;
            }
            if (n == 0) {
                return false;
            }
        }
        if (i < b.length && (b[i] == 'e' || b[i] == 'E')) {
            i++;
            if (!consume('+')) {
                consume('-');
            }
            int n = 0;
            while (digit()) {
                i++;
                n++;
            }
            if (n == 0) {
                return false;
            }
        }
        return true;
    }

    private boolean skip(int depth) {
        if (depth > MAX_NESTING) {
            return false;
        }
        switch (peek()) {
            case '"':
                return skipString();
            case '{':
                i++;
                ws();
                if (consume('}')) {
                    return true;
                }
                for (;;) {
                    ws();
                    if (!skipString()) {
                        return false;
                    }
                    ws();
                    if (!consume(':')) {
                        return false;
                    }
                    ws();
                    if (!skip(depth + 1)) {
                        return false;
                    }
                    ws();
                    if (consume('}')) {
                        return true;
                    }
                    if (!consume(',')) {
                        return false;
                    }
                }
            case '[':
                i++;
                ws();
                if (consume(']')) {
                    return true;
                }
                for (;;) {
                    ws();
                    if (!skip(depth + 1)) {
                        return false;
                    }
                    ws();
                    if (consume(']')) {
                        return true;
                    }
                    if (!consume(',')) {
                        return false;
                    }
                }
            case 't':
                return literal("true");
            case 'f':
                return literal("false");
            case 'n':
                return literal("null");
            default:
                return num();
        }
    }

    private boolean skipString() {
        if (!consume('"')) {
            return false;
        }
        while (i < b.length) {
            int c = b[i] & 0xff;
            if (c == '"') {
                i++;
                return true;
            } else if (c < 0x20) {
                return false;
            } else if (c == '\\') {
                i++;
                if (i >= b.length) {
                    return false;
                }
                c = b[i] & 0xff;
                i++;
                switch (c) {
                    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                        break;
                    case 'u':
                        if (hex4() < 0) {
                            return false;
                        }
                        break;
                    default:
                        return false;
                }
            } else {
                i++;
            }
        }
        return false;
    }

    // ------------------------------------------------------------ times

    private static int digits(byte[] s, int from, int to) {
        int n = 0;
        for (int j = from; j < to; j++) {
            int c = s[j];
            if (c < '0' || c > '9') {
                return -1;
            }
            n = n * 10 + (c - '0');
        }
        return n;
    }

    static boolean isLeap(int y) {
        return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    }

    static int daysIn(int y, int m) {
        switch (m) {
            case 2:
                return isLeap(y) ? 29 : 28;
            case 4: case 6: case 9: case 11:
                return 30;
            default:
                return 31;
        }
    }

    /** Days since 1970-01-01 (Howard Hinnant), as churnflow's daysFromCivil. */
    static long daysFromCivil(int y, int m, int d) {
        if (m <= 2) {
            y--;
        }
        int era = Math.floorDiv(y, 400);
        int yoe = y - era * 400;
        int mp = (m + 9) % 12;
        int doy = (153 * mp + 2) / 5 + d - 1;
        int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return (long) era * 146097 + doe - 719468;
    }

    private static long parseDate(byte[] s, int n) {
        if (n != 10 || s[4] != '-' || s[7] != '-') {
            return Long.MIN_VALUE;
        }
        int y = digits(s, 0, 4), m = digits(s, 5, 7), d = digits(s, 8, 10);
        if (y < 0 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m)) {
            return Long.MIN_VALUE;
        }
        return daysFromCivil(y, m, d);
    }

    /** RFC 3339 to Unix seconds (fraction truncated), Long.MIN_VALUE if invalid. */
    static long parseRFC3339(byte[] s, int n) {
        if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') {
            return Long.MIN_VALUE;
        }
        int y = digits(s, 0, 4), mo = digits(s, 5, 7), d = digits(s, 8, 10);
        int h = digits(s, 11, 13), mi = digits(s, 14, 16), sec = digits(s, 17, 19);
        if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || mi < 0 || sec < 0 || d > daysIn(y, mo) || h > 23 || mi > 59
            || sec > 59) {
            return Long.MIN_VALUE;
        }
        int p = 19;
        if (p < n && s[p] == '.') {
            int j = p + 1;
            while (j < n && s[j] >= '0' && s[j] <= '9') {
                j++;
            }
            if (j == p + 1) {
                return Long.MIN_VALUE;
            }
            p = j;
        }
        long off = 0;
        int rest = n - p;
        if (rest == 1 && (s[p] == 'Z' || s[p] == 'z')) {
            // UTC
        } else if (rest == 6 && (s[p] == '+' || s[p] == '-') && s[p + 3] == ':') {
            int oh = digits(s, p + 1, p + 3), om = digits(s, p + 4, p + 6);
            if (oh < 0 || om < 0 || oh > 23 || om > 59) {
                return Long.MIN_VALUE;
            }
            off = oh * 3600L + om * 60L;
            if (s[p] == '-') {
                off = -off;
            }
        } else {
            return Long.MIN_VALUE;
        }
        long t = daysFromCivil(y, mo, d) * 86400L + h * 3600L + mi * 60L + sec - off;
        if (t < MIN_TIME || t > MAX_TIME) {
            return Long.MIN_VALUE;
        }
        return t;
    }

    private static boolean validUtf8(byte[] s, int n) {
        int j = 0;
        while (j < n) {
            int c = s[j] & 0xff;
            if (c < 0x80) {
                j++;
                continue;
            }
            int need;
            int min;
            if (c >= 0xc2 && c <= 0xdf) {
                need = 1;
                min = 0x80;
            } else if (c >= 0xe0 && c <= 0xef) {
                need = 2;
                min = 0x800;
            } else if (c >= 0xf0 && c <= 0xf4) {
                need = 3;
                min = 0x10000;
            } else {
                return false;
            }
            if (j + need >= n) {
                return false;
            }
            int r = c & (0x3f >> need);
            for (int k = 1; k <= need; k++) {
                int cc = s[j + k] & 0xff;
                if ((cc & 0xc0) != 0x80) {
                    return false;
                }
                r = (r << 6) | (cc & 0x3f);
            }
            if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) {
                return false;
            }
            j += need + 1;
        }
        return true;
    }
}
