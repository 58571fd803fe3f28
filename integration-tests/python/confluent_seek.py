"""confluent-kafka: assign at a middle offset, then seek backwards; reads start exactly there.

usage: confluent_seek.py BOOTSTRAP TOPIC COUNT START SEEK

Produces COUNT records into a fresh 1-partition topic, assigns at offset START and reads to the
end, then seeks to offset SEEK and reads to the end again. Prints
{"produced", "from_start", "from_seek"} (records as JSON); every list is checked here too.
"""

import sys

from confluent_kafka import TopicPartition

import confluent_common as cc
from common import DEADLINE_S, Deadline, check, emit, make_records, now_ms, to_json


def read_from(consumer, topic, count, expected):
    """Reads until end-of-partition at `count`; the records must be exactly `expected`."""
    got = cc.consume_until(
        consumer, topic, {0: count}, f"{topic} from offset {expected[0]['offset']}"
    )
    check(got == expected, f"expected offsets {[r['offset'] for r in expected]}, got {got}")
    return got


def seek(consumer, topic, offset):
    # A seek right after a fetch may meet the partition mid-state; retry until it takes.
    deadline = Deadline(DEADLINE_S, f"seek to {offset}")
    while True:
        try:
            consumer.seek(TopicPartition(topic, 0, offset))
            return
        except Exception as error:  # noqa: BLE001 - any KafkaException: retry until deadline
            deadline.check(str(error))
            consumer.poll(0.1)


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    count, start, seek_offset = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    check(0 < seek_offset < start < count, "need 0 < SEEK < START < COUNT")
    cc.create_topic(bootstrap, cc.admin(bootstrap), topic, 1)
    records = make_records(topic, count, 1, now_ms() - 60_000)
    offsets = cc.produce(cc.producer(bootstrap, {"acks": "all"}), topic, records)
    check(offsets == list(range(count)), f"offsets {offsets}")
    produced = [to_json(record, offset) for record, offset in zip(records, offsets)]

    consumer = cc.consumer(bootstrap, f"{topic}-reader")
    cc.assign_from(consumer, topic, {0: start})
    from_start = read_from(consumer, topic, count, produced[start:])
    seek(consumer, topic, seek_offset)
    from_seek = read_from(consumer, topic, count, produced[seek_offset:])
    consumer.close()
    emit({"produced": produced, "from_start": from_start, "from_seek": from_seek})


if __name__ == "__main__":
    main()
