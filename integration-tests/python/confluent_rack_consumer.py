"""confluent-kafka (librdkafka): read a partition with or without client.rack (KIP-392).

usage: confluent_rack_consumer.py BOOTSTRAP TOPIC PRESENT ADDED RACK

Partition 0 holds PRESENT records whose values are their offsets as 8 digits. A consumer with
client.rack=RACK ("-": not set) assigned at the beginning reads them; then ADDED more are
produced (acks=all) and read too. Prints {"values": [...], "before": stats, "after": stats}
where stats, from librdkafka's statistics after the first and the last record read, are
{"fetch_broker": the broker the partition is fetched from, "leader": id,
"fetch_requests": {node id: Fetch requests sent}}.
"""

import json
import sys

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from common import DEADLINE_S, Deadline, check, emit, fail

STATS_INTERVAL_MS = 100


def read_until(consumer, values, end):
    """Appends every value up to end-of-partition at `end`, checking offsets are contiguous."""
    deadline = Deadline(DEADLINE_S, f"records up to offset {end}")
    while True:
        deadline.check(f"(have {len(values)})")
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if message.offset() == end:
                    return
                continue
            fail(f"consumer error {error}")
        check(message.offset() == len(values), f"offset {message.offset()} after {len(values)}")
        values.append(message.value().decode())


def snapshot(consumer, stats, topic):
    """The fetch broker and per-broker Fetch counts from statistics emitted from now on."""
    seen = len(stats)
    deadline = Deadline(DEADLINE_S, "fresh statistics")
    while len(stats) <= seen:
        deadline.check()
        consumer.poll(0.05)
    last = stats[-1]
    partition = last["topics"][topic]["partitions"]["0"]
    fetch_requests = {
        str(broker["nodeid"]): broker.get("req", {}).get("Fetch", 0)
        for broker in last["brokers"].values()
        if broker["nodeid"] >= 0
    }
    return {
        "fetch_broker": partition["broker"],
        "leader": partition["leader"],
        "fetch_requests": fetch_requests,
    }


def produce(bootstrap, topic, first, count):
    producer = Producer(
        {"bootstrap.servers": bootstrap, "broker.address.family": "v4", "acks": "all"}
    )
    for value in range(first, first + count):
        producer.produce(topic, value=f"{value:08}".encode(), partition=0)
    remaining = producer.flush(DEADLINE_S)
    check(remaining == 0, f"{remaining} records undelivered")


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    present, added, rack = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    stats = []
    config = {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "group.id": f"{topic}-reader-{rack}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
        "check.crcs": True,
        "statistics.interval.ms": STATS_INTERVAL_MS,
        "stats_cb": lambda text: stats.append(json.loads(text)),
    }
    if rack != "-":
        config["client.rack"] = rack
    consumer = Consumer(config)
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    read_until(consumer, values, present)
    before = snapshot(consumer, stats, topic)
    produce(bootstrap, topic, present, added)
    read_until(consumer, values, present + added)
    after = snapshot(consumer, stats, topic)
    consumer.close()
    emit({"values": values, "before": before, "after": after})


if __name__ == "__main__":
    main()
