#!/usr/bin/env python3
"""A Kafka client nobody in this project wrote, for pipeline/interop_test.go.

confluent-kafka (PyPI; librdkafka underneath) produces the pipeline's input
events and consumes the topics it writes. scripts/test.sh installs it in
.cache/pyenv.

    confluent_client.py produce BOOTSTRAP < records
        stdin: JSON lines {"topic", "key", "value"}; stdout: one JSON line
        per delivery report {"topic", "partition", "offset", "key"}, in
        the order of the input. Exits 1 if any record failed.

    confluent_client.py consume BOOTSTRAP GROUP MIN TIMEOUT TOPIC...
        Subscribes GROUP to the topics from their beginning and prints each
        record as a JSON line {"topic", "partition", "offset", "key",
        "value", "headers": {name: value}} once it has read at least MIN
        records and then nothing new for a second (so duplicates and extras
        show), or when TIMEOUT seconds pass. Exits 0 either way: the caller
        judges what was read.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer


def log(*args):
    print("confluent_client:", *args, file=sys.stderr, flush=True)


def produce(bootstrap):
    records = [json.loads(line) for line in sys.stdin if line.strip()]
    producer = Producer({
        "bootstrap.servers": bootstrap,
        # The pipeline needs a member's bookings and activity in the same
        # partition number of both input topics, and the other producers
        # (kafka-go's Murmur2Balancer in the pipeline and its tools, the
        # Java client, Kafka Streams, Kafka Connect) pick it as Java does:
        # murmur2(key) % partitions. librdkafka's default partitioner is
        # consistent_random (CRC32 of the key), which puts a key elsewhere:
        # a member written by this client and by a Java-compatible one would
        # be split across partitions, its state in two workers.
        # murmur2_random is librdkafka's Java-compatible one (random only
        # for null keys, which we never send).
        "partitioner": "murmur2_random",
        "acks": "all",
        # Per-partition order must survive retries: the pipeline reads
        # each topic in offset order.
        "enable.idempotence": True,
        "linger.ms": 5,
        "client.id": "churnflow-interop-python",
    })
    reports = [None] * len(records)
    failed = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                failed.append((i, err))
                return
            reports[i] = {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": msg.key().decode(),
            }
        return cb

    for i, r in enumerate(records):
        while True:
            try:
                producer.produce(r["topic"], key=r["key"].encode(), value=r["value"].encode(),
                                 on_delivery=on_delivery(i))
                break
            except BufferError:  # local queue full: serve callbacks, retry
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(30)
    if left:
        log(f"{left} records still undelivered after 30s")
        return 1
    if failed:
        for i, err in failed:
            log(f"record {i} ({records[i]['topic']} {records[i]['key']}): {err}")
        return 1
    for rep in reports:
        print(json.dumps(rep))
    return 0


def consume(bootstrap, group, min_records, timeout, topics):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
        "client.id": "churnflow-interop-python",
        # A subscription must not have the broker create a missing topic
        # (real Kafka has auto.create.topics.enable): it would get one
        # partition and no compaction. The pipeline creates its outputs.
        "allow.auto.create.topics": False,
    })
    consumer.subscribe(topics)
    out = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if len(out) >= min_records and time.monotonic() - last_new > 1.0:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                log(f"consumer error (going on): {msg.error()}")
                continue
            key = msg.key()
            out.append({
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": None if key is None else key.decode(),
                "value": msg.value().decode(),
                "headers": {k: (v or b"").decode() for k, v in (msg.headers() or [])},
            })
            last_new = time.monotonic()
    finally:
        consumer.close()
    for rec in out:
        print(json.dumps(rec))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "produce":
        return produce(argv[1])
    if len(argv) >= 6 and argv[0] == "consume":
        return consume(argv[1], argv[2], int(argv[3]), float(argv[4]), argv[5:])
    log(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
