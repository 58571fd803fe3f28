"""Produces numbered records to partition 0 of a topic, for the kill -9 crash test.

Prints one line per *successful* delivery report, `offset key value`, flushed at once, so the
test knows every record the broker acknowledged (acks=all) even when this process is killed a
moment later. Failed deliveries go to stderr. Record `n` has key `n` and the value
`value_of(n)`; the test recomputes it, so content is checked without passing it around.

Usage: crash_producer.py BOOTSTRAP TOPIC FIRST_NUMBER [COUNT]
Without COUNT it produces until killed; with COUNT it produces COUNT records, waits for every
delivery report and exits 0 only if all were delivered.
"""

import sys
import time

from confluent_kafka import KafkaException, Producer

# How long a record may wait for its acknowledgement. Short enough that a dead broker shows as
# failed deliveries, long enough for a busy two-core machine.
MESSAGE_TIMEOUT_MS = 60_000
# Records queued ahead of delivery before produce() waits for reports.
QUEUE_RECORDS_MAX = 20_000
DEADLINE_S = 120.0


def value_of(number):
    return f"value-{number}-" + "x" * (number % 97)


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bootstrap, topic, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
    count = int(sys.argv[4]) if len(sys.argv) == 5 else None
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "queue.buffering.max.messages": QUEUE_RECORDS_MAX,
        }
    )
    failures = []

    def report(error, message):
        if error is not None:
            failures.append(message.key())
            print(f"delivery failed: key {message.key()!r}: {error}", file=sys.stderr, flush=True)
            return
        key = message.key().decode()
        value = message.value().decode()
        sys.stdout.write(f"{message.offset()} {key} {value}\n")
        sys.stdout.flush()

    number = first
    deadline = time.monotonic() + DEADLINE_S
    while count is None or number < first + count:
        if time.monotonic() > deadline:
            fail(f"still producing after {DEADLINE_S} s")
        try:
            producer.produce(topic, key=str(number), value=value_of(number), partition=0, on_delivery=report)
        except BufferError:
            producer.poll(0.01)
            continue
        except KafkaException as error:
            fail(f"produce {number}: {error}")
        number += 1
        producer.poll(0)
    remaining = producer.flush(DEADLINE_S)
    if remaining or failures:
        fail(f"{remaining} records undelivered, {len(failures)} failed")


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
