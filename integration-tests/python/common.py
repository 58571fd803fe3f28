"""Shared pieces of the client scripts: deterministic records, exact comparison, deadlines.

Every script exits non-zero with a clear message on the first mismatch (via `fail`) and prints
one JSON document on stdout for the Rust test to assert on. Records are generated from
(tag, index) so a mismatch names exactly which record differs.
"""

import json
import sys
import time

# Generous: CI is a busy two-core machine running brokers, JVMs and librdkafka at once.
DEADLINE_S = 60.0


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def now_ms():
    return int(time.time() * 1000)


class Deadline:
    """A point in time; `expired()` polls it, `remaining_s()` bounds a blocking call."""

    def __init__(self, seconds=DEADLINE_S, what="operation"):
        self.at = time.monotonic() + seconds
        self.what = what

    def expired(self):
        return time.monotonic() >= self.at

    def check(self, detail=""):
        if self.expired():
            fail(f"timed out waiting for {self.what} {detail}")


def wait_for(what, probe, seconds=DEADLINE_S, interval_s=0.1):
    """Polls `probe()` until it returns something truthy; fails the script at the deadline."""
    deadline = Deadline(seconds, what)
    while True:
        value = probe()
        if value:
            return value
        deadline.check()
        time.sleep(interval_s)


def make_record(tag, index, partitions, base_timestamp_ms, null_header_values=True):
    """The record number `index` of a run: keys, values and headers exercise null and binary
    content, duplicate header keys and records without headers. Clients that cannot send a
    null header value (kafka-python) get an empty one instead."""
    key = None if index % 7 == 3 else f"{tag}-key-{index}".encode()
    if index % 11 == 5 and key is not None:  # some clients refuse a record with neither
        value = None
    else:
        value = (
            f"{tag}-value-{index}-".encode() + b"x" * (index % 50) + bytes([index % 256, 0, 255])
        )
    if index % 9 == 0:
        headers = []
    else:
        headers = [("index", str(index).encode()), ("dup", b"first"), ("dup", b"second")]
        if index % 5 == 0:
            headers.append(("null", None if null_header_values else b""))
    return {
        "partition": index % partitions,
        "key": key,
        "value": value,
        "headers": headers,
        "timestamp": base_timestamp_ms + index * 10,
    }


def make_records(tag, count, partitions, base_timestamp_ms, null_header_values=True):
    return [
        make_record(tag, i, partitions, base_timestamp_ms, null_header_values) for i in range(count)
    ]


def hex_or_none(data):
    return None if data is None else data.hex()


def to_json(record, offset):
    """A record as plain JSON (bytes as hex) with the offset it was stored or found at."""
    return {
        "partition": record["partition"],
        "offset": offset,
        "key": hex_or_none(record["key"]),
        "value": hex_or_none(record["value"]),
        "headers": [[name, hex_or_none(value)] for name, value in record["headers"]],
        "timestamp": record["timestamp"],
    }


def content(record_json):
    """What must round-trip exactly: everything but the offset."""
    return {name: value for name, value in record_json.items() if name != "offset"}


def check_exact(produced, consumed, offsets_known):
    """`consumed` holds every produced record exactly once, per partition in produce order, at
    offsets 0, 1, 2, ... (the topics are fresh); when the producer reported offsets, they are the
    ones the consumer found."""
    check(
        len(consumed) == len(produced),
        f"consumed {len(consumed)} records, produced {len(produced)}",
    )
    partitions = sorted({record["partition"] for record in produced})
    for partition in partitions:
        sent = [r for r in produced if r["partition"] == partition]
        got = [r for r in consumed if r["partition"] == partition]
        check(
            len(got) == len(sent),
            f"partition {partition}: consumed {len(got)}, produced {len(sent)}",
        )
        for position, (expected, actual) in enumerate(zip(sent, got)):
            check(
                actual["offset"] == position,
                f"partition {partition}: record {position} at offset {actual['offset']}",
            )
            if offsets_known:
                check(
                    expected["offset"] == actual["offset"],
                    f"partition {partition}: producer was told offset {expected['offset']}, "
                    f"consumer found it at {actual['offset']}",
                )
            check(
                content(expected) == content(actual),
                f"partition {partition} offset {position}: expected {expected}, got {actual}",
            )


def emit(document):
    print(json.dumps(document, sort_keys=True), flush=True)
