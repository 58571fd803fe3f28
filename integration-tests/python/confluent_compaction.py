"""confluent-kafka: a compacted topic (cleanup.policy=compact) written and read back.

usage:
  confluent_compaction.py produce BOOTSTRAP TOPIC REPLICATION KEYS ROUNDS CODEC DELETE_RETENTION_MS
  confluent_compaction.py produce-txn BOOTSTRAP TOPIC KEYS ROUNDS
  confluent_compaction.py read BOOTSTRAP TOPIC END EXPECTED_FILE [ISOLATION]

produce: creates TOPIC with the AdminClient (cleanup.policy=compact, segment.ms=200,
min.cleanable.dirty.ratio=0.01, delete.retention.ms=DELETE_RETENTION_MS), checks that
DescribeConfigs shows them, checks that a record without a key is refused with
INVALID_RECORD, then writes ROUNDS rounds of updates of KEYS keys with an idempotent
producer and codec CODEC (every key in round 0; later rounds skip keys % 7 == 1, so their
round-0 record stays their latest), and in a last round tombstones keys % 10 == 0. Prints
every record produced with its offset.

produce-txn: creates TOPIC like produce, then writes ROUNDS rounds of every key, each round in
its own transaction; rounds with index % 3 == 1 are aborted (the last round commits) and also
write 10 keys of their own. Prints
every record produced with its offset and whether its transaction committed.

read: consumes the partition (ISOLATION read_committed, the default, or read_uncommitted)
from offset 0 to END (the log end) until the records equal the
JSON list in EXPECTED_FILE (the cleaner works in the background), polling with a deadline.
Prints the records read and how many reads it took.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

import confluent_common as cc
from common import DEADLINE_S, Deadline, check, emit, fail, now_ms, to_json

TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "segment.ms": "200",
    "min.cleanable.dirty.ratio": "0.01",
}
ABORTED_ONLY_KEYS = 10
# Gives the broker time to roll segments between rounds (segment.ms above).
ROUND_PAUSE_S = 0.25


def record(key, round_index, base_ms, tombstone=False):
    name = f"key-{key:04d}".encode()
    value = None if tombstone else f"key-{key}-round-{round_index}-".encode() + b"v" * 60
    return {
        "partition": 0,
        "key": name,
        "value": value,
        "headers": [("round", str(round_index).encode())],
        "timestamp": base_ms + round_index * 1000 + key,
    }


def create_compacted(bootstrap, admin_client, topic, replication, delete_retention_ms):
    configs = dict(TOPIC_CONFIGS, **{"delete.retention.ms": str(delete_retention_ms)})
    new = NewTopic(topic, num_partitions=1, replication_factor=replication, config=configs)
    futures = admin_client.create_topics([new], operation_timeout=30, request_timeout=DEADLINE_S)
    futures[topic].result(timeout=DEADLINE_S)
    cc.wait_until_ready(bootstrap, topic, 1)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    described = admin_client.describe_configs([resource], request_timeout=DEADLINE_S)
    entries = described[resource].result(timeout=DEADLINE_S)
    shown = {name: entries[name].value for name in configs}
    check(shown == configs, f"described {shown}, created with {configs}")
    return {name: entry.value for name, entry in sorted(entries.items())}


def null_key_refusal(bootstrap, topic):
    producer = cc.producer(bootstrap, {"acks": "all"})
    errors = []
    producer.produce(
        topic, key=None, value=b"no key", partition=0, on_delivery=lambda e, m: errors.append(e)
    )
    check(producer.flush(DEADLINE_S) == 0, "keyless record undelivered")
    check(len(errors) == 1 and errors[0] is not None, f"keyless record accepted: {errors}")
    check(errors[0].code() == KafkaError.INVALID_RECORD, f"keyless record: {errors[0]}")
    return errors[0].name()


def produce(argv):
    bootstrap, topic = argv[0], argv[1]
    replication, keys, rounds = int(argv[2]), int(argv[3]), int(argv[4])
    codec, delete_retention_ms = argv[5], int(argv[6])
    admin_client = cc.admin(bootstrap)
    configs = create_compacted(bootstrap, admin_client, topic, replication, delete_retention_ms)
    refusal = null_key_refusal(bootstrap, topic)
    producer = cc.producer(
        bootstrap, {"acks": "all", "enable.idempotence": True, "compression.type": codec}
    )
    base_ms = now_ms()
    produced = []
    for round_index in range(rounds):
        batch = [
            record(key, round_index, base_ms)
            for key in range(keys)
            if round_index == 0 or key % 7 != 1
        ]
        offsets = cc.produce(producer, topic, batch)
        produced += [to_json(r, offset) for r, offset in zip(batch, offsets)]
        time.sleep(ROUND_PAUSE_S)
    tombstones = [record(key, rounds, base_ms, True) for key in range(keys) if key % 10 == 0]
    offsets = cc.produce(producer, topic, tombstones)
    produced += [to_json(r, offset) for r, offset in zip(tombstones, offsets)]
    check([r["offset"] for r in produced] == list(range(len(produced))), "offsets not dense")
    emit({"configs": configs, "null_key_error": refusal, "produced": produced})


def produce_txn(argv):
    bootstrap, topic, keys, rounds = argv[0], argv[1], int(argv[2]), int(argv[3])
    admin_client = cc.admin(bootstrap)
    create_compacted(bootstrap, admin_client, topic, 1, 1000)
    producer = cc.producer(bootstrap, {"transactional.id": f"{topic}-txn"})
    producer.init_transactions(DEADLINE_S)
    base_ms = now_ms()
    produced = []
    for round_index in range(rounds):
        commit = round_index % 3 != 1 or round_index == rounds - 1
        producer.begin_transaction()
        # Aborted rounds also write ABORTED_ONLY_KEYS keys no committed round writes: only
        # the cleaner's transaction rule, not a newer value, can remove those records.
        written_keys = keys if commit else keys + ABORTED_ONLY_KEYS
        batch = [record(key, round_index, base_ms) for key in range(written_keys)]
        offsets = cc.produce(producer, topic, batch)
        if commit:
            producer.commit_transaction(DEADLINE_S)
        else:
            producer.abort_transaction(DEADLINE_S)
        for r, offset in zip(batch, offsets):
            produced.append(dict(to_json(r, offset), committed=commit))
        time.sleep(ROUND_PAUSE_S)
    emit({"produced": produced})


def read_all(bootstrap, topic, end, attempt, isolation):
    # confluent_common's consumer settings plus the isolation level.
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "group.id": f"{topic}-reader-{attempt}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "check.crcs": True,
            "fetch.wait.max.ms": 100,
            "isolation.level": isolation,
        }
    )
    cc.assign_from(consumer, topic, {0: 0})
    records = cc.consume_until(consumer, topic, {0: end}, f"{topic} from 0")
    consumer.close()
    return records


def read(argv):
    bootstrap, topic, end, expected_file = argv[0], argv[1], int(argv[2]), argv[3]
    isolation = argv[4] if len(argv) > 4 else "read_committed"
    with open(expected_file) as file:
        expected = json.load(file)
    deadline = Deadline(DEADLINE_S * 2, "the compacted log to show the expected records")
    attempts = 0
    while True:
        attempts += 1
        records = read_all(bootstrap, topic, end, attempts, isolation)
        if records == expected:
            emit({"attempts": attempts, "records": records})
            return
        if deadline.expired():
            extra = [r for r in records if r not in expected][:3]
            missing = [r for r in expected if r not in records][:3]
            fail(f"read {len(records)} records, want {len(expected)}; extra {extra}, missing {missing}")
        time.sleep(0.5)


def main():
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode == "produce":
        produce(argv)
    elif mode == "produce-txn":
        produce_txn(argv)
    elif mode == "read":
        read(argv)
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
