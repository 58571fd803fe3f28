"""confluent-kafka AdminClient: topics, configs and partitions, including the error answers.

usage: confluent_admin.py BOOTSTRAP PREFIX

Prints one JSON document of what the broker answered; each answer is also checked here.
"""

import sys

from confluent_kafka import KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

import confluent_common as cc
from common import DEADLINE_S, check, emit, fail, wait_for

TIMEOUTS = {"request_timeout": DEADLINE_S}


def create(admin_client, topic, validate_only=False):
    futures = admin_client.create_topics(
        [topic], validate_only=validate_only, operation_timeout=30, **TIMEOUTS
    )
    return futures[topic.topic]


def create_error(admin_client, topic):
    """The Kafka error code the broker answered for creating `topic`, which must fail, with
    librdkafka's name for it."""
    try:
        create(admin_client, topic).result(timeout=DEADLINE_S)
    except KafkaException as exception:
        return [exception.args[0].code(), exception.args[0].name()]
    fail(f"creating {topic.topic} with {topic.num_partitions} partitions succeeded")


def topic_names(admin_client):
    return set(admin_client.list_topics(timeout=DEADLINE_S).topics)


def describe_topic(admin_client, name):
    futures = admin_client.describe_topics(TopicCollection([name]), **TIMEOUTS)
    description = futures[name].result(timeout=DEADLINE_S)
    return {
        "name": description.name,
        "internal": description.is_internal,
        "partitions": [
            {
                "id": partition.id,
                "leader": partition.leader.id,
                "replicas": [node.id for node in partition.replicas],
                "isr": [node.id for node in partition.isr],
            }
            for partition in description.partitions
        ],
    }


def topic_configs(admin_client, name):
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = admin_client.describe_configs([resource], **TIMEOUTS)[resource].result(
        timeout=DEADLINE_S
    )
    return {key: entry for key, entry in entries.items()}


def config_value(admin_client, name, key):
    entry = topic_configs(admin_client, name).get(key)
    check(entry is not None, f"describe_configs({name}) has no {key}")
    source = ConfigSource(entry.source).name
    return {"value": entry.value, "source": source, "is_default": entry.is_default}


def alter_retention(admin_client, name, retention_ms):
    """Legacy AlterConfigs: replaces the topic's whole dynamic config."""
    resource = ConfigResource(
        ResourceType.TOPIC, name, set_config={"retention.ms": str(retention_ms)}
    )
    admin_client.alter_configs([resource], **TIMEOUTS)[resource].result(timeout=DEADLINE_S)


def incremental_alter_retention(admin_client, name, retention_ms):
    entry = ConfigEntry(
        "retention.ms", str(retention_ms), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[entry])
    futures = admin_client.incremental_alter_configs([resource], **TIMEOUTS)
    futures[resource].result(timeout=DEADLINE_S)


def check_cluster(admin_client, bootstrap):
    metadata = admin_client.list_topics(timeout=DEADLINE_S)
    brokers = {
        node_id: f"{broker.host}:{broker.port}" for node_id, broker in metadata.brokers.items()
    }
    check(brokers == {1: bootstrap}, f"brokers {brokers}, expected {{1: {bootstrap}}}")
    return brokers


def check_errors(admin_client, existing, prefix):
    errors = {
        "existing": create_error(
            admin_client, NewTopic(existing, num_partitions=1, replication_factor=1)
        ),
        "bad_name": create_error(
            admin_client, NewTopic("bad name!", num_partitions=1, replication_factor=1)
        ),
        "zero_partitions": create_error(
            admin_client, NewTopic(f"{prefix}-zero", num_partitions=0, replication_factor=1)
        ),
    }
    # librdkafka calls Kafka's INVALID_TOPIC_EXCEPTION (17) TOPIC_EXCEPTION.
    expected = {
        "existing": [36, "TOPIC_ALREADY_EXISTS"],
        "bad_name": [17, "TOPIC_EXCEPTION"],
        "zero_partitions": [37, "INVALID_PARTITIONS"],
    }
    check(errors == expected, f"create errors {errors}, expected {expected}")
    return errors


def wait_for_config(admin_client, name, key, value):
    """The described config entry once it shows `value` (a broker may apply changes a moment
    after acknowledging them: Apache Kafka does)."""

    def described():
        entry = config_value(admin_client, name, key)
        return entry if entry["value"] == value else None

    return wait_for(f"{name} {key}={value} in describe_configs", described)


def check_configs(admin_client, topic):
    configs = {"created": wait_for_config(admin_client, topic, "retention.ms", "86400000")}
    alter_retention(admin_client, topic, 7_200_000)
    configs["altered"] = wait_for_config(admin_client, topic, "retention.ms", "7200000")
    incremental_alter_retention(admin_client, topic, 3_600_000)
    configs["incremental"] = wait_for_config(admin_client, topic, "retention.ms", "3600000")
    check(
        configs["incremental"]["source"] == "DYNAMIC_TOPIC_CONFIG",
        f"source {configs['incremental']}",
    )
    return configs


def check_create_partitions(admin_client, bootstrap, topic):
    futures = admin_client.create_partitions([NewPartitions(topic, 5)], **TIMEOUTS)
    futures[topic].result(timeout=DEADLINE_S)

    def described_with_five():
        described = describe_topic(admin_client, topic)
        return described if len(described["partitions"]) == 5 else None

    described = wait_for(f"{topic} to have 5 partitions", described_with_five)
    # The new partition takes records like the old ones.
    producer = cc.producer(bootstrap, {"acks": "all"})
    delivered = []
    producer.produce(
        topic,
        value=b"in-new-partition",
        partition=4,
        on_delivery=lambda e, m: delivered.append((e, m.offset())),
    )
    check(
        producer.flush(DEADLINE_S) == 0 and delivered == [(None, 0)],
        f"produce to partition 4: {delivered}",
    )
    consumer = cc.consumer(bootstrap, f"{topic}-reader")
    check(
        consumer.get_watermark_offsets(TopicPartition(topic, 4), timeout=DEADLINE_S) == (0, 1),
        "partition 4 watermarks",
    )
    consumer.close()
    return described


def main():
    bootstrap, prefix = sys.argv[1], sys.argv[2]
    admin_client = cc.admin(bootstrap)
    brokers = check_cluster(admin_client, bootstrap)
    topic = f"{prefix}-main"
    dry_run = f"{prefix}-dry-run"

    create(
        admin_client, NewTopic(dry_run, num_partitions=2, replication_factor=1), validate_only=True
    ).result(timeout=DEADLINE_S)
    check(dry_run not in topic_names(admin_client), "validate_only created the topic")
    config = {"retention.ms": "86400000"}
    create(
        admin_client, NewTopic(topic, num_partitions=3, replication_factor=1, config=config)
    ).result(timeout=DEADLINE_S)
    wait_for(f"{topic} in list_topics", lambda: topic in topic_names(admin_client))
    described = describe_topic(admin_client, topic)
    expected_partitions = [{"id": p, "leader": 1, "replicas": [1], "isr": [1]} for p in range(3)]
    check(described["partitions"] == expected_partitions, f"describe_topics {described}")
    check(not described["internal"], "topic is internal")
    listed = admin_client.list_topics(topic=topic, timeout=DEADLINE_S).topics[topic]
    check(listed.error is None and sorted(listed.partitions) == [0, 1, 2], f"list_topics {listed}")

    errors = check_errors(admin_client, topic, prefix)
    configs = check_configs(admin_client, topic)
    after_create_partitions = check_create_partitions(admin_client, bootstrap, topic)

    admin_client.delete_topics([topic], operation_timeout=30, **TIMEOUTS)[topic].result(
        timeout=DEADLINE_S
    )
    wait_for(f"{topic} gone from list_topics", lambda: topic not in topic_names(admin_client))
    emit(
        {
            "brokers": {str(k): v for k, v in brokers.items()},
            "described": described,
            "errors": errors,
            "configs": configs,
            "partitions_after_create_partitions": len(after_create_partitions["partitions"]),
            "deleted": topic not in topic_names(admin_client),
            "dry_run_created": dry_run in topic_names(admin_client),
        }
    )


if __name__ == "__main__":
    main()
