"""The compatibility scenario (see ../README.md) driven by aiokafka.

usage: aiokafka_scenario.py BOOTSTRAP PREFIX. Prints one JSON line per feature:
{"client": "aiokafka", "feature": ..., "ok": true|false, "detail": ...}. Exits 0 once every
feature ran (failed ones included); a crash exits non-zero and the Rust test fails loudly.
"""

import asyncio
import json
import sys
import time
import traceback

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import OffsetAndMetadata

CLIENT = "aiokafka"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORD_COUNT = 20
GROUP_PARTITIONS = 2
ADMIN_PARTITIONS = 3
RETENTION_MS = "86400000"
ASSIGN_OFFSET = 12
COMMITTED = {0: 7, 1: 3}
DEADLINE_S = 60.0


class Check(Exception):
    """A mismatch: the feature fails with this message as its detail."""


def check(condition, message):
    if not condition:
        raise Check(message)


def emit(feature, ok, detail):
    line = {"client": CLIENT, "feature": feature, "ok": ok, "detail": detail}
    print(json.dumps(line, sort_keys=True), flush=True)


async def feature(name, coroutine):
    """Runs one feature; any exception is that feature's failure, never the whole run's."""
    try:
        detail = await asyncio.wait_for(coroutine, DEADLINE_S)
        emit(name, True, detail or "")
        return True
    except Exception as error:  # noqa: BLE001 - every failure is reported, then the run goes on
        detail = f"{type(error).__name__}: {error}"
        print(traceback.format_exc(), file=sys.stderr, flush=True)
        emit(name, False, detail)
        return False


def base_timestamp_ms():
    """A whole second an hour ago: exact, in the past and well inside retention."""
    return (int(time.time()) - 3600) * 1000


def make_record(index, tag, base_ms):
    return {
        "key": f"key-{index}".encode(),
        "value": f"value-{index}-{tag}".encode(),
        "headers": [
            ("index", str(index).encode()),
            ("dup", b"first"),
            ("dup", b"second"),
            ("bin", bytes([0, 255, index])),
        ],
        "timestamp": base_ms + index * 1000,
    }


def observed(message):
    return {
        "key": message.key,
        "value": message.value,
        "headers": [(name, bytes(value)) for name, value in message.headers],
        "timestamp": message.timestamp,
    }


def check_exact(expected, got, first_offset):
    check(len(got) == len(expected), f"consumed {len(got)} records, expected {len(expected)}")
    for position, (want, message) in enumerate(zip(expected, got)):
        offset = first_offset + position
        check(message.offset == offset, f"record {position} at offset {message.offset}")
        check(observed(message) == want, f"offset {offset}: expected {want}, got {observed(message)}")


class Scenario:
    def __init__(self, bootstrap, prefix):
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.base_ms = base_timestamp_ms()
        self.admin = None

    def topic(self, name):
        return f"{self.prefix}-{name}"

    async def produce(self, topic, records, partition_of, **config):
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", **config)
        await producer.start()
        try:
            offsets = []
            for index, record in enumerate(records):
                metadata = await producer.send_and_wait(
                    topic,
                    value=record["value"],
                    key=record["key"],
                    headers=record["headers"],
                    timestamp_ms=record["timestamp"],
                    partition=partition_of(index),
                )
                offsets.append(metadata.offset)
            return offsets
        finally:
            await producer.stop()

    async def consume_assigned(self, topic, offset, count):
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            consumer.seek(partition, offset)
            got = []
            while len(got) < count:
                batches = await consumer.getmany(partition, timeout_ms=500)
                got.extend(batches.get(partition, []))
            return got
        finally:
            await consumer.stop()

    async def create_topics(self):
        topics = [NewTopic(self.topic(codec), 1, 1) for codec in CODECS]
        topics.append(NewTopic(self.topic("idempotent"), 1, 1))
        topics.append(NewTopic(self.topic("group"), GROUP_PARTITIONS, 1))
        configs = {"retention.ms": RETENTION_MS}
        topics.append(NewTopic(self.topic("admin"), ADMIN_PARTITIONS, 1, topic_configs=configs))
        response = await self.admin.create_topics(topics)
        errors = [(name, code) for name, code, *_ in response.topic_errors if code != 0]
        check(errors == [], f"create errors {errors}")
        return f"{len(topics)} topics"

    async def describe_topics(self):
        described = await self.admin.describe_topics([self.topic("admin")])
        check(len(described) == 1, f"described {described}")
        topic = described[0]
        check(topic["error_code"] == 0, f"error {topic['error_code']}")
        partitions = sorted(
            (p["partition"], p["leader"], p["replicas"], p["isr"]) for p in topic["partitions"]
        )
        want = [(index, 1, [1], [1]) for index in range(ADMIN_PARTITIONS)]
        check(partitions == want, f"partitions {partitions}")
        return f"{ADMIN_PARTITIONS} partitions, leader 1"

    async def describe_configs(self):
        resource = ConfigResource(ConfigResourceType.TOPIC, self.topic("admin"))
        responses = await self.admin.describe_configs([resource])
        values = {}
        for response in responses:
            for resource_result in response.resources:
                for entry in resource_result[4]:
                    values[entry[0]] = entry[1]
        check(values.get("retention.ms") == RETENTION_MS, f"retention.ms={values.get('retention.ms')}")
        return f"retention.ms={RETENTION_MS}"

    async def round_trip(self, codec):
        topic = self.topic(codec)
        records = [make_record(i, codec, self.base_ms) for i in range(RECORD_COUNT)]
        config = {} if codec == "none" else {"compression_type": codec}
        offsets = await self.produce(topic, records, lambda _: 0, **config)
        check(offsets == list(range(RECORD_COUNT)), f"producer offsets {offsets}")
        got = await self.consume_assigned(topic, 0, RECORD_COUNT)
        check_exact(records, got, 0)
        return f"{RECORD_COUNT} records, exact"

    async def headers_timestamps(self):
        records = [make_record(i, "none", self.base_ms) for i in range(RECORD_COUNT)]
        got = await self.consume_assigned(self.topic("none"), 0, RECORD_COUNT)
        headers = [observed(message)["headers"] for message in got]
        check(headers == [r["headers"] for r in records], f"headers {headers}")
        timestamps = [message.timestamp for message in got]
        check(timestamps == [r["timestamp"] for r in records], f"timestamps {timestamps}")
        types = {message.timestamp_type for message in got}
        check(types == {0}, f"timestamp types {types} (want CreateTime)")
        return "duplicate and binary headers, CreateTime timestamps"

    async def consume_assign(self):
        records = [make_record(i, "none", self.base_ms) for i in range(RECORD_COUNT)]
        count = RECORD_COUNT - ASSIGN_OFFSET
        got = await self.consume_assigned(self.topic("none"), ASSIGN_OFFSET, count)
        check_exact(records[ASSIGN_OFFSET:], got, ASSIGN_OFFSET)
        return f"assign + seek to {ASSIGN_OFFSET}"

    async def idempotent(self):
        topic = self.topic("idempotent")
        records = [make_record(i, "idempotent", self.base_ms) for i in range(RECORD_COUNT)]
        offsets = await self.produce(topic, records, lambda _: 0, enable_idempotence=True)
        check(offsets == list(range(RECORD_COUNT)), f"producer offsets {offsets}")
        got = await self.consume_assigned(topic, 0, RECORD_COUNT)
        check_exact(records, got, 0)
        return "enable_idempotence=True"

    async def consume_group(self):
        topic = self.topic("group")
        records = [make_record(i, "group", self.base_ms) for i in range(RECORD_COUNT)]
        await self.produce(topic, records, lambda index: index % GROUP_PARTITIONS)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.topic("group-consumers"),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            got = {}
            while len(got) < RECORD_COUNT:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        got[message.value] = observed(message)
            await consumer.commit()
            committed = [
                await consumer.committed(TopicPartition(topic, p)) for p in range(GROUP_PARTITIONS)
            ]
        finally:
            await consumer.stop()
        check(sorted(got.values(), key=lambda r: r["value"]) == sorted(records, key=lambda r: r["value"]),
              "group consumer records differ")
        want = [RECORD_COUNT // GROUP_PARTITIONS] * GROUP_PARTITIONS
        check(committed == want, f"committed after the group read {committed}")
        return f"subscribe, {RECORD_COUNT} records, committed {committed}"

    async def commit_fetch_offsets(self):
        topic = self.topic("group")
        group = self.topic("committer")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in COMMITTED]
            consumer.assign(partitions)
            await consumer.commit(
                {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in COMMITTED.items()}
            )
            fetched = {p: await consumer.committed(TopicPartition(topic, p)) for p in COMMITTED}
        finally:
            await consumer.stop()
        check(fetched == COMMITTED, f"fetched {fetched}")
        listed = await self.admin.list_consumer_group_offsets(group)
        by_admin = {tp.partition: meta.offset for tp, meta in listed.items()}
        check(by_admin == COMMITTED, f"admin listed {by_admin}")
        return f"committed and fetched {COMMITTED}"

    async def delete_topics(self):
        topic = self.topic("admin")
        await self.admin.delete_topics([topic])
        deadline = time.monotonic() + DEADLINE_S
        while topic in await self.admin.list_topics():
            check(time.monotonic() < deadline, "topic still listed")
            await asyncio.sleep(0.1)
        return "deleted and gone from the topic list"

    async def run(self):
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self.admin.start()
        try:
            await feature("admin_create_topics", self.create_topics())
            await feature("admin_describe_topics", self.describe_topics())
            await feature("admin_describe_configs", self.describe_configs())
            for codec in CODECS:
                await feature(f"produce_{codec}", self.round_trip(codec))
            await feature("headers_timestamps", self.headers_timestamps())
            await feature("consume_assign", self.consume_assign())
            await feature("idempotent_produce", self.idempotent())
            await feature("consume_group", self.consume_group())
            await feature("commit_fetch_offsets", self.commit_fetch_offsets())
            await feature("admin_delete_topics", self.delete_topics())
        finally:
            await self.admin.close()


def main():
    bootstrap, prefix = sys.argv[1:3]
    asyncio.run(Scenario(bootstrap, prefix).run())


if __name__ == "__main__":
    main()
