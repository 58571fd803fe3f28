"""Measures the byte rates of several confluent-kafka clients running at the same time.

usage: confluent_quota_rates.py BOOTSTRAP TOPIC produce|consume SECONDS CLIENT_ID...

Every client (one thread each, with its own client.id) produces VALUE_BYTES values as fast as
librdkafka lets it (at most PRODUCE_BYTES_MAX), or consumes TOPIC partition 0 from the beginning, for SECONDS. Printed:
{"rates": {client_id: {"steady": bytes/s after WARMUP_S, "overall": bytes/s from the start
to the last byte, "bytes": total}}}. Produced bytes count when acknowledged. librdkafka honours
throttle_time_ms (it stops sending to a throttled broker), so a quota shows in these rates.
"""

import json
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING

from common import check, fail

VALUE_BYTES = 10_000
# An unthrottled producer stops here: enough to show its rate, without filling the disk.
PRODUCE_BYTES_MAX = 32 * 1024 * 1024
# The first seconds include the quota's burst allowance; the steady rate is measured after.
WARMUP_S = 2.0


class Meter:
    def __init__(self):
        self.lock = threading.Lock()
        self.bytes = 0
        self.at_warmup = None
        self.last_at = None

    def add(self, count, now):
        with self.lock:
            self.bytes += count
            self.last_at = now


def produce(bootstrap, topic, client_id, seconds, meter, start):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "1",
        "linger.ms": 5,
        # A small local queue: the client cannot run far ahead of what the broker acks.
        "queue.buffering.max.kbytes": 1024,
        "batch.size": 65536,
    })
    value = b"v" * VALUE_BYTES

    def delivered(error, message):
        if error is not None:
            fail(f"{client_id}: delivery failed: {error}")
        meter.add(len(message.value()), time.monotonic())

    queued = 0
    while time.monotonic() - start < seconds and queued < PRODUCE_BYTES_MAX:
        try:
            producer.produce(topic, value, partition=0, on_delivery=delivered)
            queued += len(value)
        except BufferError:
            producer.poll(0.05)
            continue
        producer.poll(0)
    producer.flush(30)


def consume(bootstrap, topic, client_id, seconds, meter, start):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "group.id": f"quota-{client_id}",
        "enable.auto.commit": False,
        # Small fetches: the measured rate is smooth rather than one large response a second.
        "max.partition.fetch.bytes": 65536,
    })
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    while time.monotonic() - start < seconds:
        message = consumer.poll(0.1)
        if message is None:
            continue
        check(message.error() is None, f"{client_id}: {message.error()}")
        meter.add(len(message.value()), time.monotonic())
    consumer.close()


def main():
    bootstrap, topic, mode, seconds = sys.argv[1:5]
    seconds = float(seconds)
    client_ids = sys.argv[5:]
    check(mode in ("produce", "consume") and client_ids, "bad arguments")
    run = produce if mode == "produce" else consume
    meters = {client_id: Meter() for client_id in client_ids}
    start = time.monotonic()
    threads = [
        threading.Thread(target=run, args=(bootstrap, topic, cid, seconds, meters[cid], start))
        for cid in client_ids
    ]
    for thread in threads:
        thread.start()
    time.sleep(WARMUP_S)
    warmup_at = time.monotonic()
    for meter in meters.values():
        with meter.lock:
            meter.at_warmup = meter.bytes
    for thread in threads:
        thread.join()
    rates = {}
    for client_id, meter in meters.items():
        check(meter.last_at is not None, f"{client_id} moved no bytes")
        steady_s = max(meter.last_at - warmup_at, 1e-3)
        rates[client_id] = {
            "steady": (meter.bytes - meter.at_warmup) / steady_s,
            "overall": meter.bytes / max(meter.last_at - start, 1e-3),
            "bytes": meter.bytes,
        }
    print(json.dumps({"rates": rates}))


if __name__ == "__main__":
    main()
