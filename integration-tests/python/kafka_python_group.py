"""kafka-python group consumers: two KafkaConsumers subscribe() in one group, consume every
record with commits, and the committed offsets end at the log end.

usage: kafka_python_group.py BOOTSTRAP TOPIC. Prints one JSON document.
"""

import sys
import threading
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError
from kafka.admin import KafkaAdminClient, NewTopic

from common import DEADLINE_S, Deadline, check, emit

PARTITIONS = 4
COUNT = 200


def commit(consumer):
    """Commits the consumed positions; a commit that loses the race with a rebalance is
    retried after rejoining (its records are redelivered, at-least-once)."""
    for _ in range(50):
        try:
            consumer.commit()
            return
        except CommitFailedError:
            consumer.poll(timeout_ms=100)
    raise RuntimeError("commit kept failing")


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
    # Each consumer polls in its own thread, as applications do: one thread polling two
    # consumers in turn starves whichever is waiting in a rebalance.
    seen = {}
    lock = threading.Lock()
    done = threading.Event()
    failures = []

    def run(consumer):
        try:
            while not done.is_set():
                batches = consumer.poll(timeout_ms=100)
                with lock:
                    for records in batches.values():
                        for record in records:
                            seen[record.value.decode()] = record.offset
                if batches:
                    commit(consumer)
            # Every record is in: commit the final positions, which a commit lost to a
            # rebalance may have left behind.
            commit(consumer)
        except Exception as error:  # reported by the main thread
            failures.append(repr(error))
            done.set()

    threads = [threading.Thread(target=run, args=(c,)) for c in consumers]
    for thread in threads:
        thread.start()
    deadline = Deadline(DEADLINE_S, "every record and a balanced assignment")
    try:
        while True:
            with lock:
                complete = len(seen) >= COUNT
            balanced = sorted(len(c.assignment()) for c in consumers) == [2, 2]
            if complete and balanced or failures:
                break
            deadline.check(f"(seen {len(seen)}, failures {failures})")
            time.sleep(0.05)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    check(not failures, f"a consumer failed: {failures}")
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
