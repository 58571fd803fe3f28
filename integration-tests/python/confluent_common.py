"""confluent-kafka (librdkafka) helpers shared by the confluent_*.py scripts."""

import sys

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import DEADLINE_S, Deadline, check, fail, to_json, wait_for

# librdkafka's timestamp type for CreateTime (confluent_kafka.TIMESTAMP_CREATE_TIME).
TIMESTAMP_CREATE_TIME = 1


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})


def create_topic(bootstrap, admin_client, name, partitions, config=None):
    """Creates the topic and waits until every partition answers ListOffsets with (0, 0)."""
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    futures = admin_client.create_topics([topic], operation_timeout=30, request_timeout=DEADLINE_S)
    futures[name].result(timeout=DEADLINE_S)
    wait_until_ready(bootstrap, name, partitions)


def wait_until_ready(bootstrap, name, partitions):
    # A broker may answer CreateTopics before its partitions take records (Apache Kafka does);
    # an acks=0 record sent then would be dropped without an error to show for it. A consumer
    # handle, unlike the admin client, refreshes a partition's unknown leader while it waits.
    probe = consumer(bootstrap, f"{name}-ready")

    def ready():
        try:
            watermarks = [
                probe.get_watermark_offsets(TopicPartition(name, p), timeout=5)
                for p in range(partitions)
            ]
        except KafkaException as error:
            print(f"{name} not ready yet: {error}", file=sys.stderr)
            return False
        return all(watermark == (0, 0) for watermark in watermarks)

    wait_for(f"{name} to take records", ready, interval_s=0.2)
    probe.close()


def producer(bootstrap, extra):
    config = {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "linger.ms": 5,
        # Fail loudly instead of retrying forever against a broken broker.
        "message.timeout.ms": int(DEADLINE_S * 1000),
    }
    config.update(extra)
    return Producer(config)


def produce(producer_client, topic, records):
    """Sends `records` (from common.make_records) and returns, per record, the offset from its
    delivery report; fails the script on any delivery error."""
    reports = [None] * len(records)

    def on_delivery(index):
        def report(error, message):
            if error is not None:
                fail(f"delivery of record {index} failed: {error}")
            reports[index] = (message.partition(), message.offset())

        return report

    for index, record in enumerate(records):
        producer_client.produce(
            topic,
            key=record["key"],
            value=record["value"],
            headers=record["headers"],
            partition=record["partition"],
            timestamp=record["timestamp"],
            on_delivery=on_delivery(index),
        )
        producer_client.poll(0)
    remaining = producer_client.flush(DEADLINE_S)
    check(remaining == 0, f"{remaining} records still undelivered after flush")
    for index, report in enumerate(reports):
        check(report is not None, f"no delivery report for record {index}")
        check(
            report[0] == records[index]["partition"],
            f"record {index} went to partition {report[0]}",
        )
    return [offset for _, offset in reports]


def consumer(bootstrap, group):
    # librdkafka's high-level consumer needs a group.id even when it only assigns partitions;
    # nothing here commits or joins the group.
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "check.crcs": True,
            "fetch.wait.max.ms": 100,
        }
    )


def message_json(message):
    headers = message.headers() or []
    timestamp_type, timestamp = message.timestamp()
    check(
        timestamp_type == TIMESTAMP_CREATE_TIME,
        f"offset {message.offset()}: timestamp type {timestamp_type}",
    )
    record = {
        "partition": message.partition(),
        "key": message.key(),
        "value": message.value(),
        "headers": list(headers),
        "timestamp": timestamp,
    }
    return to_json(record, message.offset())


def consume_until(consumer_client, topic, ends, what):
    """Polls until every partition `p` in `ends` reached end-of-partition at offset `ends[p]`;
    returns the records seen, in arrival order. An offset past the end fails the script."""
    records = []
    eof_offsets = {}
    deadline = Deadline(DEADLINE_S, what)
    while any(eof_offsets.get(partition) != end for partition, end in ends.items()):
        deadline.check(f"(end-of-partition offsets {eof_offsets}, wanted {ends})")
        message = consumer_client.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                eof_offsets[message.partition()] = message.offset()
                continue
            fail(f"{what}: consumer error {error}")
        check(message.topic() == topic, f"{what}: record from topic {message.topic()}")
        partition = message.partition()
        check(partition in ends, f"{what}: record from unassigned partition {partition}")
        check(
            message.offset() < ends[partition],
            f"{what}: record past the end: {message_json(message)}",
        )
        records.append(message_json(message))
    return records


def assign_from(consumer_client, topic, offsets):
    consumer_client.assign(
        [TopicPartition(topic, partition, offset) for partition, offset in offsets.items()]
    )
