"""confluent-kafka: time-based retention deletes old segments and nothing else.

usage: confluent_retention.py BOOTSTRAP TOPIC COUNT RECENT VALUE_BYTES

Run against a broker with small segments and a short retention check interval. Produces COUNT
records in small batches (so they span many segments): the first COUNT - RECENT stamped two days
ago, the last RECENT stamped now. Then sets the topic's retention.ms to one day with
IncrementalAlterConfigs and polls ListOffsets until the earliest offset moves. Then: a consumer
assigned at offset 0 is reset to the new earliest offset (the older records are gone), reads
every record from there on exactly, and the latest offset is unchanged. Prints the offsets seen.
"""

import sys

from confluent_kafka import TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    OffsetSpec,
    ResourceType,
)

import confluent_common as cc
from common import DEADLINE_S, check, emit, now_ms, to_json, wait_for

DAY_MS = 86_400_000
# Records per produce batch: small batches let the broker roll segments between them.
BATCH_RECORDS = 10


def make_record(topic, index, old, value_bytes, timestamp_ms):
    prefix = f"{topic}-{index}-{'old' if old else 'recent'}-".encode()
    return {
        "partition": 0,
        "key": f"key-{index}".encode(),
        "value": prefix + bytes([index % 251]) * max(0, value_bytes - len(prefix)),
        "headers": [("index", str(index).encode())],
        "timestamp": timestamp_ms,
    }


def list_offset(admin_client, topic, spec):
    partition = TopicPartition(topic, 0)
    futures = admin_client.list_offsets({partition: spec}, request_timeout=DEADLINE_S)
    return futures[partition].result(timeout=DEADLINE_S).offset


def set_retention_ms(admin_client, topic, retention_ms):
    entry = ConfigEntry(
        "retention.ms", str(retention_ms), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    futures = admin_client.incremental_alter_configs([resource], request_timeout=DEADLINE_S)
    futures[resource].result(timeout=DEADLINE_S)


def produce_in_batches(bootstrap, topic, records):
    producer = cc.producer(bootstrap, {"acks": "all", "compression.type": "none"})
    offsets = []
    for start in range(0, len(records), BATCH_RECORDS):
        offsets += cc.produce(producer, topic, records[start : start + BATCH_RECORDS])
    check(offsets == list(range(len(records))), f"offsets {offsets}")
    return offsets


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    count, recent, value_bytes = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    check(0 < recent < count, "need 0 < RECENT < COUNT")
    first_recent = count - recent
    admin_client = cc.admin(bootstrap)
    cc.create_topic(bootstrap, admin_client, topic, 1)
    now = now_ms()
    records = [
        make_record(
            topic,
            i,
            i < first_recent,
            value_bytes,
            now - 2 * DAY_MS + i if i < first_recent else now + i,
        )
        for i in range(count)
    ]
    offsets = produce_in_batches(bootstrap, topic, records)
    produced = [to_json(record, offset) for record, offset in zip(records, offsets)]
    check(list_offset(admin_client, topic, OffsetSpec.earliest()) == 0, "earliest before retention")
    check(list_offset(admin_client, topic, OffsetSpec.latest()) == count, "latest before retention")

    set_retention_ms(admin_client, topic, DAY_MS)
    earliest_seen = wait_for(
        "retention to advance the earliest offset",
        lambda: list_offset(admin_client, topic, OffsetSpec.earliest()) or None,
        seconds=DEADLINE_S,
        interval_s=0.2,
    )
    check(
        0 < earliest_seen <= first_recent, f"earliest {earliest_seen}: recent records were deleted"
    )

    consumer = cc.consumer(bootstrap, f"{topic}-reader")
    cc.assign_from(consumer, topic, {0: 0})
    consumed = cc.consume_until(consumer, topic, {0: count}, f"{topic} after retention")
    consumer.close()
    check(consumed, "nothing left to consume")
    first = consumed[0]["offset"]
    check(first >= earliest_seen, f"read offset {first}, below the earliest offset {earliest_seen}")
    check(consumed == produced[first:], "records after retention differ from the produced ones")
    earliest_final = list_offset(admin_client, topic, OffsetSpec.earliest())
    latest_final = list_offset(admin_client, topic, OffsetSpec.latest())
    check(
        earliest_final == first, f"earliest {earliest_final}, but reading from 0 started at {first}"
    )
    check(latest_final == count, f"latest offset moved to {latest_final}")
    emit(
        {
            "count": count,
            "first_recent": first_recent,
            "earliest_seen": earliest_seen,
            "earliest_final": earliest_final,
            "latest_final": latest_final,
            "first_consumed": first,
            "consumed": len(consumed),
        }
    )


if __name__ == "__main__":
    main()
