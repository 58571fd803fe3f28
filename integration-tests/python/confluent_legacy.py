"""confluent-kafka (librdkafka) forced to the pre-0.10 protocol: no ApiVersions request and
`broker.version.fallback=0.9.0`, so Produce v1 / Fetch v1 with message format v0 (no
timestamps, no headers) and OffsetCommit v2 / OffsetFetch v1 with group membership v0.

usage: confluent_legacy.py MODE BOOTSTRAP TOPIC ...
  old-produce  BOOTSTRAP TOPIC CODEC COUNT PARTITIONS
  old-consume  BOOTSTRAP TOPIC COUNT PARTITIONS          assign, from the beginning
  old-group    BOOTSTRAP TOPIC GROUP COUNT PARTITIONS    subscribe, consume, commit

Topics are made and read by modern clients through legacy_clients.py. Message format v0 has no
timestamp, so records produced or read here report -1. Prints one JSON document:
{"produced": [...]} or {"consumed": [...]} (plus "committed" and "committed_modern" for a group).
"""

import sys

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    TopicPartition,
)

import confluent_common as cc
from common import DEADLINE_S, Deadline, check, emit, fail, to_json
from legacy_clients import records_for

# What makes librdkafka a 0.9 client: it never asks the broker which versions it speaks.
OLD_PROTOCOL = {"api.version.request": False, "broker.version.fallback": "0.9.0"}
PRE_0_10 = (0, 9)


def old_consumer(bootstrap, group):
    config = {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "check.crcs": True,
        "fetch.wait.max.ms": 100,
        # A generous session: a busy CI machine must not evict the member mid-test.
        "session.timeout.ms": 30000,
    }
    config.update(OLD_PROTOCOL)
    return Consumer(config)


def old_produce(bootstrap, topic, codec, count, partitions):
    records = records_for(topic, count, partitions, PRE_0_10)
    producer = cc.producer(bootstrap, {"compression.codec": codec, "acks": "1", **OLD_PROTOCOL})
    # Format v0 carries no timestamp; 0 asks librdkafka for "now", which it then cannot send.
    offsets = cc.produce(producer, topic, [dict(r, timestamp=0) for r in records])
    emit({"produced": [to_json(r, offset) for r, offset in zip(records, offsets)]})


def old_message_json(message):
    """A record read with Fetch v1 (format v0): no timestamp, no headers."""
    timestamp_type, timestamp = message.timestamp()
    check(
        timestamp_type == TIMESTAMP_NOT_AVAILABLE,
        f"offset {message.offset()}: format v0 has no timestamp, got ({timestamp_type}, {timestamp})",
    )
    check(not message.headers(), f"offset {message.offset()}: headers {message.headers()}")
    record = {
        "partition": message.partition(),
        "key": message.key(),
        "value": message.value(),
        "headers": [],
        "timestamp": -1,
    }
    return to_json(record, message.offset())


def consume_until(consumer, topic, count, partitions, what):
    """Polls until `count` records arrived and every partition reported its end; returns them
    sorted by (partition, offset)."""
    records = []
    eof = set()
    deadline = Deadline(DEADLINE_S, what)
    while len(records) < count or len(eof) < partitions:
        deadline.check(f"({len(records)} of {count}, end of partitions {sorted(eof)})")
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                eof.add(message.partition())
                continue
            fail(f"{what}: {error}")
        check(message.topic() == topic, f"{what}: record from topic {message.topic()}")
        # A record arriving means the partition's end is no longer known to be reached.
        eof.discard(message.partition())
        records.append(old_message_json(message))
    check(len(records) == count, f"{what}: {len(records)} records, wanted {count}")
    return sorted(records, key=lambda r: (r["partition"], r["offset"]))


def old_consume(bootstrap, topic, count, partitions):
    consumer = old_consumer(bootstrap, f"{topic}-old-reader")
    cc.assign_from(consumer, topic, {p: 0 for p in range(partitions)})
    consumed = consume_until(consumer, topic, count, partitions, "old consume")
    consumer.close()
    emit({"consumed": consumed})


def old_group(bootstrap, topic, group, count, partitions):
    """Joins `group` (JoinGroup/SyncGroup v0), consumes everything, commits synchronously, and
    reads the commits back with this old client and with a modern one."""
    consumer = old_consumer(bootstrap, group)
    consumer.subscribe([topic])
    consumed = consume_until(consumer, topic, count, partitions, "old group consume")
    ends = {p: 1 + max([r["offset"] for r in consumed if r["partition"] == p], default=-1)
            for p in range(partitions)}
    to_commit = [TopicPartition(topic, p, end) for p, end in ends.items()]
    for result in consumer.commit(offsets=to_commit, asynchronous=False):
        check(result.error is None, f"commit of partition {result.partition}: {result.error}")
    wanted = [TopicPartition(topic, p) for p in range(partitions)]
    committed_old = {str(tp.partition): tp.offset
                     for tp in consumer.committed(wanted, timeout=DEADLINE_S)}
    consumer.close()
    modern = cc.consumer(bootstrap, group)
    committed_modern = {str(tp.partition): tp.offset
                        for tp in modern.committed(wanted, timeout=DEADLINE_S)}
    modern.close()
    emit({"consumed": consumed, "committed": committed_old, "committed_modern": committed_modern})


def main():
    mode, bootstrap, topic, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if mode == "old-produce":
        old_produce(bootstrap, topic, rest[0], int(rest[1]), int(rest[2]))
    elif mode == "old-consume":
        old_consume(bootstrap, topic, int(rest[0]), int(rest[1]))
    elif mode == "old-group":
        old_group(bootstrap, topic, rest[0], int(rest[1]), int(rest[2]))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
