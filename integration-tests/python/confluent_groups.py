"""confluent-kafka (librdkafka) consumers in classic groups.

usage: confluent_groups.py BOOTSTRAP TOPIC MODE
  cooperative: three consumers with partition.assignment.strategy=cooperative-sticky share a
      6-partition topic; one closes mid-stream; every record is consumed, no partition ever
      has two owners, and the committed offsets end at the log end.
  ten: ten consumers started together join one group; they must converge in at most two
      rebalances (each consumer's assignment callback runs at most twice).
Prints one JSON document.
"""

import sys
import time

from confluent_kafka import Consumer, TopicPartition

from common import DEADLINE_S, Deadline, check, emit
from confluent_common import admin, create_topic, producer


def group_consumer(bootstrap, group, extra):
    config = {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "fetch.wait.max.ms": 100,
    }
    config.update(extra)
    return Consumer(config)


class Member:
    """One consumer and the partitions it owns, checked against every other member's."""

    def __init__(self, index, consumer, owners, violations, cooperative=False):
        self.index = index
        self.cooperative = cooperative
        self.consumer = consumer
        self.owners = owners
        self.violations = violations
        self.assign_calls = 0
        self.owned = set()

    def on_assign(self, consumer, partitions):
        self.assign_calls += 1
        for tp in partitions:
            owner = self.owners.get(tp.partition)
            if owner is not None and owner != self.index:
                self.violations.append((tp.partition, owner, self.index))
            self.owners[tp.partition] = self.index
            self.owned.add(tp.partition)
        if self.cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def on_revoke(self, consumer, partitions):
        for tp in partitions:
            if self.owners.get(tp.partition) == self.index:
                del self.owners[tp.partition]
            self.owned.discard(tp.partition)
        if self.cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()


def cooperative(bootstrap, topic):
    partitions = 6
    count = 600
    create_topic(bootstrap, admin(bootstrap), topic, partitions)
    group = f"{topic}-group"
    owners, violations = {}, []
    members = []
    for index in range(3):
        consumer = group_consumer(bootstrap, group, {"partition.assignment.strategy": "cooperative-sticky"})
        member = Member(index, consumer, owners, violations, cooperative=True)
        consumer.subscribe([topic], on_assign=member.on_assign, on_revoke=member.on_revoke, on_lost=member.on_revoke)
        members.append(member)
    producer_client = producer(bootstrap, {})
    seen = {}
    offsets = {p: set() for p in range(partitions)}
    produced = 0
    closed = False
    deadline = Deadline(DEADLINE_S * 2, "every record")
    while len(seen) < count:
        deadline.check(f"(seen {len(seen)}, produced {produced})")
        if produced < count:
            for index in range(produced, min(produced + 20, count)):
                producer_client.produce(topic, value=f"v{index}".encode(), partition=index % partitions)
            produced = min(produced + 20, count)
            producer_client.flush(DEADLINE_S)
        for member in members:
            message = member.consumer.poll(0.05)
            if message is None:
                continue
            check(message.error() is None, f"consumer {member.index}: {message.error()}")
            seen[message.value().decode()] = seen.get(message.value().decode(), 0) + 1
            offsets[message.partition()].add(message.offset())
            member.consumer.commit(message=message, asynchronous=False)
        if not closed and len(seen) >= count // 3 and all(m.owned for m in members):
            members[2].consumer.close()
            members = members[:2]
            closed = True
    check(closed, "the third consumer never owned partitions")
    took_over = Deadline(DEADLINE_S, "the remaining two to own every partition")
    while sum(len(m.owned) for m in members) != partitions:
        took_over.check(f"(owners {owners})")
        for member in members:
            member.consumer.poll(0.05)
    committed = members[0].consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    for member in members:
        member.consumer.close()
    gaps = [p for p in range(partitions) if offsets[p] != set(range(count // partitions))]
    emit({
        "assign_calls": sorted(m.assign_calls for m in members),
        "distinct": len(seen),
        "missing": [i for i in range(count) if f"v{i}" not in seen],
        "violations": violations,
        "gaps": gaps,
        "committed": [tp.offset for tp in committed],
    })


def ten(bootstrap, topic):
    partitions = 12
    create_topic(bootstrap, admin(bootstrap), topic, partitions)
    group = f"{topic}-group"
    owners, violations = {}, []
    errors = []
    members = []
    for index in range(10):
        consumer = group_consumer(bootstrap, group, {"error_cb": errors.append})
        member = Member(index, consumer, owners, violations)
        consumer.subscribe([topic], on_assign=member.on_assign, on_revoke=member.on_revoke, on_lost=member.on_revoke)
        members.append(member)
    started = time.monotonic()
    deadline = Deadline(DEADLINE_S, "ten consumers to share the partitions")
    while not (all(m.owned for m in members) and len(owners) == partitions):
        deadline.check(f"(owners {owners})")
        for member in members:
            member.consumer.poll(0.02)
    converged_s = time.monotonic() - started
    # Keep polling a while: a storm of further rebalances would show up here.
    settle = time.monotonic() + 5
    while time.monotonic() < settle:
        for member in members:
            member.consumer.poll(0.02)
    admin_client = admin(bootstrap)
    described = admin_client.describe_consumer_groups([group])[group].result(timeout=30)
    assign_calls = [m.assign_calls for m in members]
    owned = sorted(len(m.owned) for m in members)
    for member in members:
        member.consumer.close()
    emit({
        "assign_calls_max": max(assign_calls),
        "owned": owned,
        "violations": violations,
        "errors": [str(e) for e in errors],
        "state": str(described.state).rsplit(".", 1)[-1],
        "members": len(described.members),
        "converged_s_max": 30 if converged_s > 30 else 0,
    })


def main():
    bootstrap, topic, mode = sys.argv[1:4]
    {"cooperative": cooperative, "ten": ten}[mode](bootstrap, topic)


if __name__ == "__main__":
    main()
