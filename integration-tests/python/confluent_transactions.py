"""confluent-kafka (librdkafka): a transactional producer commits, aborts and commits again.

usage: confluent_transactions.py BOOTSTRAP TOPIC TRANSACTIONAL_ID COUNT

Creates TOPIC with 3 partitions; three transactions of COUNT records (value `<name>-<i>` to
partition i % 3): `commit1` committed, `abort` aborted, `commit2` committed. Once the last
stable offsets reach the log end (the markers are written after the commit returns), reads
every partition from the start with isolation.level read_committed and read_uncommitted.
Prints {"read_committed": [[values of partition 0], ...], "read_uncommitted": [...]}.
"""

import sys

from confluent_kafka import Consumer, KafkaError, TopicPartition

import confluent_common as cc
from common import DEADLINE_S, Deadline, emit, fail, wait_for

PARTITIONS = 3


def consumer(bootstrap, topic, isolation):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "group.id": f"{topic}-{isolation}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "fetch.wait.max.ms": 100,
        }
    )


def ends(client, topic):
    return [
        client.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(PARTITIONS)
    ]


def read_all(client, topic, end_offsets):
    """Values per partition in offset order, up to end-of-partition at `end_offsets`."""
    client.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    values = [[] for _ in range(PARTITIONS)]
    eof = {}
    deadline = Deadline(DEADLINE_S, f"reading {topic}")
    while any(eof.get(p) != end_offsets[p] for p in range(PARTITIONS)):
        deadline.check(f"(end-of-partition offsets {eof}, wanted {end_offsets})")
        message = client.poll(0.2)
        if message is None:
            continue
        if message.error() is not None:
            if message.error().code() == KafkaError._PARTITION_EOF:
                eof[message.partition()] = message.offset()
                continue
            fail(f"consumer error {message.error()}")
        values[message.partition()].append(message.value().decode())
    return values


def main():
    bootstrap, topic, transactional_id, count = sys.argv[1:5]
    count = int(count)
    cc.create_topic(bootstrap, cc.admin(bootstrap), topic, PARTITIONS)
    producer = cc.producer(bootstrap, {"transactional.id": transactional_id})
    producer.init_transactions(DEADLINE_S)
    for name in ["commit1", "abort", "commit2"]:
        producer.begin_transaction()
        for index in range(count):
            producer.produce(topic, value=f"{name}-{index}".encode(), partition=index % PARTITIONS)
        if name == "abort":
            producer.flush(DEADLINE_S)
            producer.abort_transaction(DEADLINE_S)
        else:
            producer.commit_transaction(DEADLINE_S)
    committed = consumer(bootstrap, topic, "read_committed")
    uncommitted = consumer(bootstrap, topic, "read_uncommitted")
    log_ends = ends(uncommitted, topic)
    wait_for(f"last stable offsets at {log_ends}", lambda: ends(committed, topic) == log_ends)
    emit(
        {
            "read_committed": read_all(committed, topic, log_ends),
            "read_uncommitted": read_all(uncommitted, topic, log_ends),
        }
    )
    committed.close()
    uncommitted.close()


if __name__ == "__main__":
    main()
