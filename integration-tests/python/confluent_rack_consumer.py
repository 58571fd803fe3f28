"""confluent-kafka (librdkafka): read a partition with or without client.rack (KIP-392).

usage: confluent_rack_consumer.py BOOTSTRAP TOPIC COUNT RACK

Assigns partition 0 from the beginning with client.rack=RACK ("-": not set) and reads until
end-of-partition at COUNT. Prints {"values": [...], "fetch_broker": id, "leader": id,
"fetch_requests": {node id: Fetch requests sent}} from librdkafka's statistics taken after
the last record: "fetch_broker" is the broker the partition was fetched from at the end.
"""

import json
import sys

from confluent_kafka import KafkaError, TopicPartition, Consumer

from common import DEADLINE_S, Deadline, check, emit, fail

STATS_INTERVAL_MS = 100


def main():
    bootstrap, topic, count, rack = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
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
    deadline = Deadline(DEADLINE_S, f"{count} records of {topic}")
    at_end = False
    while not at_end:
        deadline.check(f"(have {len(values)})")
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end = message.offset() == count
                continue
            fail(f"consumer error {error}")
        check(message.offset() == len(values), f"offset {message.offset()} after {len(values)}")
        values.append(message.value().decode())
    # Statistics emitted after the last record name the broker that served it.
    seen = len(stats)
    stats_deadline = Deadline(DEADLINE_S, "statistics after the last record")
    while len(stats) <= seen:
        stats_deadline.check()
        consumer.poll(0.05)
    last = stats[-1]
    partition = last["topics"][topic]["partitions"]["0"]
    fetch_requests = {
        str(broker["nodeid"]): broker.get("req", {}).get("Fetch", 0)
        for broker in last["brokers"].values()
        if broker["nodeid"] >= 0
    }
    consumer.close()
    emit(
        {
            "values": values,
            "fetch_broker": partition["broker"],
            "leader": partition["leader"],
            "fetch_requests": fetch_requests,
        }
    )


if __name__ == "__main__":
    main()
