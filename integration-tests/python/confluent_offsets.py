"""confluent-kafka: offsets_for_times, list_offsets and watermarks over known timestamps.

usage: confluent_offsets.py BOOTSTRAP TOPIC

Produces 10 records into a fresh 1-partition topic at timestamps BASE + i * 1000 ms, then asks
for offsets by timestamp (before, at and between records, and past the last) and for the
earliest / latest offsets. Prints the answers as JSON; the expected values are checked here too.
"""

import sys

from confluent_kafka import TopicPartition
from confluent_kafka.admin import OffsetSpec

import confluent_common as cc
from common import DEADLINE_S, check, emit, now_ms

COUNT = 10
STEP_MS = 1000


def offset_for_time(consumer, topic, timestamp):
    # One request per timestamp: a request may name each partition only once.
    found = consumer.offsets_for_times([TopicPartition(topic, 0, timestamp)], timeout=DEADLINE_S)
    check(len(found) == 1, f"offsets_for_times answered {found}")
    check(found[0].error is None, f"offsets_for_times({timestamp}): {found[0].error}")
    return found[0].offset


def list_offset(admin_client, topic, spec):
    partition = TopicPartition(topic, 0)
    futures = admin_client.list_offsets({partition: spec}, request_timeout=DEADLINE_S)
    info = futures[partition].result(timeout=DEADLINE_S)
    return {"offset": info.offset, "timestamp": info.timestamp}


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    admin_client = cc.admin(bootstrap)
    cc.create_topic(bootstrap, admin_client, topic, 1)
    base_ms = now_ms() - 600_000
    producer = cc.producer(bootstrap, {"acks": "all"})
    for index in range(COUNT):
        producer.produce(
            topic, value=f"v{index}".encode(), partition=0, timestamp=base_ms + index * STEP_MS
        )
    check(producer.flush(DEADLINE_S) == 0, "records left undelivered")

    consumer = cc.consumer(bootstrap, f"{topic}-reader")
    probes = {
        "before_first": base_ms - 1,
        "at_first": base_ms,
        "at_fourth": base_ms + 4 * STEP_MS,
        "between_fourth_and_fifth": base_ms + 4 * STEP_MS + STEP_MS // 2,
        "at_last": base_ms + (COUNT - 1) * STEP_MS,
        "after_last": base_ms + COUNT * STEP_MS,
    }
    found = {
        name: offset_for_time(consumer, topic, timestamp) for name, timestamp in probes.items()
    }
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=DEADLINE_S)
    consumer.close()
    listed = {
        "earliest": list_offset(admin_client, topic, OffsetSpec.earliest()),
        "latest": list_offset(admin_client, topic, OffsetSpec.latest()),
        "for_timestamp": list_offset(
            admin_client, topic, OffsetSpec.for_timestamp(probes["between_fourth_and_fifth"])
        ),
    }
    result = {
        "base_ms": base_ms,
        "offsets_for_times": found,
        "watermarks": [low, high],
        "list_offsets": listed,
    }
    expected_found = {
        "before_first": 0,
        "at_first": 0,
        "at_fourth": 4,
        "between_fourth_and_fifth": 5,
        "at_last": COUNT - 1,
        "after_last": -1,
    }
    check(found == expected_found, f"offsets_for_times {found}, expected {expected_found}")
    check([low, high] == [0, COUNT], f"watermarks {low}, {high}")
    check(listed["earliest"]["offset"] == 0, f"earliest {listed['earliest']}")
    check(listed["latest"]["offset"] == COUNT, f"latest {listed['latest']}")
    expected_for_timestamp = {"offset": 5, "timestamp": base_ms + 5 * STEP_MS}
    check(
        listed["for_timestamp"] == expected_for_timestamp,
        f"for_timestamp {listed['for_timestamp']}",
    )
    emit(result)


if __name__ == "__main__":
    main()
