"""Old and modern clients on one topic: kafka-python forced to the Kafka 0.8-0.10 protocols
(no ApiVersions, Produce v0-v2, Fetch v0-v3, message formats v0/v1) and confluent-kafka.

usage: legacy_clients.py MODE BOOTSTRAP TOPIC ...
  create          BOOTSTRAP TOPIC PARTITIONS              modern admin creates the topic
  old-produce     BOOTSTRAP TOPIC API_VERSION CODEC COUNT PARTITIONS
  modern-produce  BOOTSTRAP TOPIC CODEC COUNT PARTITIONS
  old-consume     BOOTSTRAP TOPIC API_VERSION COUNT PARTITIONS
  modern-consume  BOOTSTRAP TOPIC COUNT PARTITIONS
  old-group       BOOTSTRAP TOPIC API_VERSION GROUP COUNT PARTITIONS

API_VERSION is dotted ("0.9", "0.10.0"). Records have no headers (formats v0/v1 cannot carry
them); message format v0 has no timestamp, so records produced with it report -1. Prints one
JSON document: {"produced": [...]} or {"consumed": [...], "committed": {...}}.
"""

import sys

from confluent_kafka import KafkaError, TopicPartition as ModernPartition
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

import confluent_common as cc
from common import DEADLINE_S, Deadline, check, emit, fail, make_records, now_ms, to_json

TIMEOUT_MS = int(DEADLINE_S * 1000)
# Message format v1 (timestamps) arrived with Kafka 0.10.0.
FIRST_VERSION_WITH_TIMESTAMPS = (0, 10, 0)
# Group membership (JoinGroup/SyncGroup) arrived with Kafka 0.9.
FIRST_VERSION_WITH_GROUPS = (0, 9)


def parse_version(text):
    return tuple(int(part) for part in text.split("."))


def records_for(topic, count, partitions, api_version=None):
    """Deterministic records without headers; the timestamp an old format keeps."""
    records = make_records(topic, count, partitions, now_ms() - 60_000)
    for record in records:
        record["headers"] = []
        if api_version is not None and api_version < FIRST_VERSION_WITH_TIMESTAMPS:
            record["timestamp"] = -1
    return records


def old_produce(bootstrap, topic, api_version, codec, count, partitions):
    version = parse_version(api_version)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        api_version=version,
        acks=1,
        compression_type=None if codec == "none" else codec,
        linger_ms=20,
        request_timeout_ms=TIMEOUT_MS,
    )
    records = records_for(topic, count, partitions, version)
    futures = [
        producer.send(
            topic,
            key=r["key"],
            value=r["value"],
            partition=r["partition"],
            timestamp_ms=r["timestamp"] if r["timestamp"] >= 0 else None,
        )
        for r in records
    ]
    producer.flush(timeout=DEADLINE_S)
    offsets = [future.get(timeout=DEADLINE_S).offset for future in futures]
    producer.close()
    emit({"produced": [to_json(r, offset) for r, offset in zip(records, offsets)]})


def modern_produce(bootstrap, topic, codec, count, partitions):
    records = records_for(topic, count, partitions)
    producer = cc.producer(bootstrap, {"compression.type": codec, "acks": "all"})
    offsets = cc.produce(producer, topic, records)
    emit({"produced": [to_json(r, offset) for r, offset in zip(records, offsets)]})


def old_record_json(record):
    timestamp = record.timestamp if record.timestamp is not None else -1
    check(not record.headers, f"old formats carry no headers: {record}")
    as_dict = {
        "partition": record.partition,
        "key": record.key,
        "value": record.value,
        "headers": [],
        "timestamp": timestamp,
    }
    return to_json(as_dict, record.offset)


def old_consumer(bootstrap, api_version, group=None):
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        api_version=parse_version(api_version),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT_MS + 5000,
        fetch_max_wait_ms=100,
    )


def poll_count(consumer, count, what):
    records = []
    deadline = Deadline(DEADLINE_S, what)
    while len(records) < count:
        deadline.check(f"({len(records)} of {count})")
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(old_record_json(r) for r in batch)
    check(len(records) == count, f"{what}: {len(records)} records, wanted {count}")
    return sorted(records, key=lambda r: (r["partition"], r["offset"]))


def old_consume(bootstrap, topic, api_version, count, partitions):
    consumer = old_consumer(bootstrap, api_version)
    assigned = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    emit({"consumed": poll_count(consumer, count, "old consume")})
    consumer.close()


def modern_consume(bootstrap, topic, count, partitions):
    consumer = cc.consumer(bootstrap, f"{topic}-modern-reader")
    cc.assign_from(consumer, topic, {p: 0 for p in range(partitions)})
    records = []
    seen_eof = set()
    deadline = Deadline(DEADLINE_S, "modern consume")
    while len(records) < count or len(seen_eof) < partitions:
        deadline.check(f"({len(records)} of {count})")
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error() is not None:
            if message.error().code() == KafkaError._PARTITION_EOF:
                seen_eof.add(message.partition())
                continue
            fail(f"modern consume: {message.error()}")
        check(not message.headers(), f"no headers were produced: {message.headers()}")
        _, timestamp = message.timestamp()
        record = {
            "partition": message.partition(),
            "key": message.key(),
            "value": message.value(),
            "headers": [],
            "timestamp": timestamp,
        }
        records.append(to_json(record, message.offset()))
    consumer.close()
    emit({"consumed": sorted(records, key=lambda r: (r["partition"], r["offset"]))})


def old_group(bootstrap, topic, api_version, group, count, partitions):
    """Consumes everything in a group (subscribe with 0.9+, assign before), commits, and reads
    the commits back with an old and a modern client."""
    version = parse_version(api_version)
    consumer = old_consumer(bootstrap, api_version, group)
    assigned = [TopicPartition(topic, p) for p in range(partitions)]
    if version >= FIRST_VERSION_WITH_GROUPS:
        consumer.subscribe([topic])
    else:
        consumer.assign(assigned)
    consumed = poll_count(consumer, count, "old group consume")
    ends = {p: 1 + max([r["offset"] for r in consumed if r["partition"] == p], default=-1)
            for p in range(partitions)}
    consumer.commit({tp: OffsetAndMetadata(ends[tp.partition], "", -1) for tp in assigned})
    committed_old = {str(tp.partition): consumer.committed(tp) for tp in assigned}
    consumer.close()
    # A modern client of the same group sees the same commits.
    modern = cc.consumer(bootstrap, group)
    wanted = [ModernPartition(topic, p) for p in range(partitions)]
    committed_modern = {str(tp.partition): tp.offset
                        for tp in modern.committed(wanted, timeout=DEADLINE_S)}
    modern.close()
    emit({"consumed": consumed, "committed": committed_old, "committed_modern": committed_modern})


def main():
    mode, bootstrap, topic, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if mode == "create":
        cc.create_topic(bootstrap, cc.admin(bootstrap), topic, int(rest[0]))
        emit({"created": topic})
    elif mode == "old-produce":
        old_produce(bootstrap, topic, rest[0], rest[1], int(rest[2]), int(rest[3]))
    elif mode == "modern-produce":
        modern_produce(bootstrap, topic, rest[0], int(rest[1]), int(rest[2]))
    elif mode == "old-consume":
        old_consume(bootstrap, topic, rest[0], int(rest[1]), int(rest[2]))
    elif mode == "modern-consume":
        modern_consume(bootstrap, topic, int(rest[0]), int(rest[1]))
    elif mode == "old-group":
        old_group(bootstrap, topic, rest[0], rest[1], int(rest[2]), int(rest[3]))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
