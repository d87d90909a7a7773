package io.churnflow.peer;

import java.util.Set;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.streams.processor.TimestampExtractor;

/**
 * Decoding and event time. The value deserializer decodes (and validates)
 * each record once; it never throws: a record churnflow would dead-letter
 * becomes an Event carrying the reason, so the processor counts it. The
 * timestamp extractor, which Kafka Streams calls with the deserialized
 * record, gives occurred_at; a rejected record gets the partition's current
 * time, so that, as in churnflow (whose watermark only follows applied
 * events), bad records never move stream time.
 */
final class EventSerde {
    private EventSerde() {
    }

    static final class EventDeserializer implements Deserializer<Event> {
        private final ThreadLocal<EventDecoder> decoder;

        EventDeserializer(int maxBytes, Set<String> tiers) {
            decoder = ThreadLocal.withInitial(() -> new EventDecoder(maxBytes, tiers));
        }

        @Override
        public Event deserialize(String topic, byte[] data) {
            return decoder.get().decode(data);
        }
    }

    static final class OccurredAt implements TimestampExtractor {
        private final String bookingsTopic;
        private final long maxFuture;

        OccurredAt(String bookingsTopic, long maxFuture) {
            this.bookingsTopic = bookingsTopic;
            this.maxFuture = maxFuture;
        }

        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            Object v = record.value();
            if (v instanceof Event e) {
                Object k = record.key();
                e.check(bookingsTopic.equals(record.topic()), k instanceof String ? (String) k : null,
                    System.currentTimeMillis() / 1000, maxFuture);
                if (e.reject == null && e.occurredAt >= 0 && e.occurredAt < Long.MAX_VALUE / 1000) {
                    return e.occurredAt * 1000L;
                }
            }
            return Math.max(partitionTime, 0L);
        }
    }
}
