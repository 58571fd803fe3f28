"""Reads partition 0 of a topic from the beginning to its end, for the kill -9 crash test.

Prints `offset key value` for every record, then `END low high` with the watermarks the
broker reported before reading. Exits non-zero when the end is not reached (a record or an
end-of-partition at `high`) within the deadline, or on any consumer error.

Usage: crash_consumer.py BOOTSTRAP TOPIC
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

DEADLINE_S = 120.0


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bootstrap, topic = sys.argv[1], sys.argv[2]
    # librdkafka needs a group.id even for assign(); nothing joins or commits.
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "group.id": "crash-consumer",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "check.crcs": True,
            "fetch.wait.max.ms": 100,
        }
    )
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=DEADLINE_S)
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    lines = []
    next_offset = low
    deadline = time.monotonic() + DEADLINE_S
    while next_offset < high:
        if time.monotonic() > deadline:
            fail(f"read up to offset {next_offset} of {high} within {DEADLINE_S} s")
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if message.offset() < high:
                    fail(f"end of partition at {message.offset()}, high watermark {high}")
                continue
            fail(f"consumer error: {error}")
        if message.offset() != next_offset:
            fail(f"offset {message.offset()} where {next_offset} was next")
        lines.append(f"{message.offset()} {message.key().decode()} {message.value().decode()}")
        next_offset += 1
    consumer.close()
    lines.append(f"END {low} {high}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
