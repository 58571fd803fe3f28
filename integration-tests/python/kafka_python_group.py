"""kafka-python group consumers: two KafkaConsumers subscribe() in one group, consume every
record with commits, and the committed offsets end at the log end.

usage: kafka_python_group.py BOOTSTRAP TOPIC. Prints one JSON document.
"""

import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from common import DEADLINE_S, Deadline, check, emit

PARTITIONS = 4
COUNT = 200


def main():
    bootstrap, topic = sys.argv[1:3]
    group = f"{topic}-group"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for index in range(COUNT):
        producer.send(topic, value=f"v{index}".encode(), partition=index % PARTITIONS)
    producer.flush(timeout=DEADLINE_S)
    producer.close()
    consumers = [
        KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )
        for _ in range(2)
    ]
    for consumer in consumers:
        consumer.subscribe([topic])
    seen = {}
    deadline = Deadline(DEADLINE_S, "every record")
    while len(seen) < COUNT:
        deadline.check(f"(seen {len(seen)})")
        for consumer in consumers:
            batches = consumer.poll(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    seen[record.value.decode()] = record.offset
            if batches:
                consumer.commit()
    assignments = sorted(len(c.assignment()) for c in consumers)
    committed = [consumers[0].committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    listed = admin.list_groups(states_filter=["Stable"])
    groups = [group["group_id"] for group in listed]
    for consumer in consumers:
        consumer.close()
    check(all(f"v{i}" in seen for i in range(COUNT)), "a record was never consumed")
    emit({"distinct": len(seen), "committed": committed, "listed": group in groups, "assignments": assignments})


if __name__ == "__main__":
    main()
