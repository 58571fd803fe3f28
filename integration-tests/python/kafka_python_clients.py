"""kafka-python: KafkaAdminClient, KafkaProducer (acks=all, one codec), KafkaConsumer.

usage: kafka_python_clients.py BOOTSTRAP PREFIX CODEC COUNT

Creates a 2-partition topic, describes it, produces COUNT records with CODEC and acks=all
(checking every RecordMetadata), reads them back with assign() + seek_to_beginning() and no
group, then deletes the topic. Prints {"described", "produced", "consumed", "deleted"}.
"""

import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from common import (
    DEADLINE_S,
    Deadline,
    check,
    check_exact,
    emit,
    make_records,
    now_ms,
    to_json,
    wait_for,
)

PARTITIONS = 2
# kafka-python's ConsumerRecord.timestamp_type for CreateTime.
TIMESTAMP_CREATE_TIME = 0
TIMEOUT_MS = int(DEADLINE_S * 1000)


def describe(admin_client, topic):
    (description,) = admin_client.describe_topics([topic])
    check(description["error_code"] == 0, f"describe_topics: {description}")
    partitions = sorted(
        description["partitions"], key=lambda partition: partition["partition_index"]
    )
    for partition in partitions:
        check(partition["error_code"] == 0, f"describe_topics partition: {partition}")
    return {
        "topic": description["name"],
        "partitions": [
            {
                "id": p["partition_index"],
                "leader": p["leader_id"],
                "replicas": p["replica_nodes"],
                "isr": p["isr_nodes"],
            }
            for p in partitions
        ],
    }


def produce(bootstrap, topic, codec, records):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        request_timeout_ms=TIMEOUT_MS,
    )
    futures = [
        producer.send(
            topic,
            key=record["key"],
            value=record["value"],
            headers=record["headers"],
            partition=record["partition"],
            timestamp_ms=record["timestamp"],
        )
        for record in records
    ]
    producer.flush(timeout=DEADLINE_S)
    offsets = []
    for index, future in enumerate(futures):
        metadata = future.get(timeout=DEADLINE_S)
        check(metadata.partition == records[index]["partition"], f"record {index}: {metadata}")
        check(metadata.timestamp == records[index]["timestamp"], f"record {index}: {metadata}")
        offsets.append(metadata.offset)
    producer.close(timeout=DEADLINE_S)
    return offsets


def record_json(record):
    check(record.timestamp_type == TIMESTAMP_CREATE_TIME, f"timestamp type of {record}")
    return to_json(
        {
            "partition": record.partition,
            "key": record.key,
            "value": record.value,
            "headers": list(record.headers),
            "timestamp": record.timestamp,
        },
        record.offset,
    )


def consume(bootstrap, topic, count):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        check_crcs=True,
        fetch_max_wait_ms=100,
        request_timeout_ms=TIMEOUT_MS + 5000,
    )
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    consumed = []
    deadline = Deadline(DEADLINE_S, f"{count} records from {topic}")
    while len(consumed) < count:
        deadline.check(f"(have {len(consumed)})")
        for batch in consumer.poll(timeout_ms=200).values():
            consumed += [record_json(record) for record in batch]
    # Nothing past the produced records: the end offsets are exactly the counts.
    ends = consumer.end_offsets(partitions)
    consumer.close()
    consumed.sort(key=lambda record: (record["partition"], record["offset"]))
    return consumed, {str(tp.partition): offset for tp, offset in ends.items()}


def main():
    bootstrap, prefix, codec, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    topic = f"{prefix}-{codec}"
    admin_client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS)
    admin_client.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    try:
        admin_client.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]
        )
        check(False, f"creating {topic} twice succeeded")
    except TopicAlreadyExistsError:
        pass
    wait_for(f"{topic} in list_topics", lambda: topic in admin_client.list_topics())
    described = describe(admin_client, topic)
    expected = [{"id": p, "leader": 1, "replicas": [1], "isr": [1]} for p in range(PARTITIONS)]
    check(described["partitions"] == expected, f"describe_topics {described}")

    records = make_records(topic, count, PARTITIONS, now_ms() - 60_000, null_header_values=False)
    offsets = produce(bootstrap, topic, codec, records)
    produced = [to_json(record, offset) for record, offset in zip(records, offsets)]
    consumed, ends = consume(bootstrap, topic, count)
    check_exact(produced, consumed, True)
    expected_ends = {
        str(p): sum(1 for r in records if r["partition"] == p) for p in range(PARTITIONS)
    }
    check(ends == expected_ends, f"end offsets {ends}, expected {expected_ends}")

    admin_client.delete_topics([topic], timeout_ms=TIMEOUT_MS)
    wait_for(f"{topic} gone from list_topics", lambda: topic not in admin_client.list_topics())
    admin_client.close()
    emit(
        {
            "described": described,
            "produced": produced,
            "consumed": consumed,
            "end_offsets": ends,
            "deleted": True,
        }
    )


if __name__ == "__main__":
    main()
