"""confluent-kafka: produce with one compression codec under acks 0, 1 and all, then consume.

usage: confluent_produce_consume.py BOOTSTRAP TOPIC_PREFIX CODEC COUNT

Per acks value a fresh 2-partition topic gets COUNT records; a consumer assigned at the
beginning must read them back exactly. Prints {"runs": [{acks, topic, produced, consumed}]}.
"""

import sys

from confluent_kafka import OFFSET_BEGINNING

import confluent_common as cc
from common import check, check_exact, emit, make_records, now_ms, to_json

PARTITIONS = 2
ACKS_ALL = ["0", "1", "all"]


def producer_config(codec, acks):
    config = {"compression.type": codec, "acks": acks}
    # acks=all is also the idempotent producer's mode: exercise InitProducerId and sequences.
    config["enable.idempotence"] = acks == "all"
    return config


def run(bootstrap, admin_client, topic, codec, acks, count):
    cc.create_topic(bootstrap, admin_client, topic, PARTITIONS)
    records = make_records(topic, count, PARTITIONS, now_ms() - 60_000)
    producer = cc.producer(bootstrap, producer_config(codec, acks))
    offsets = cc.produce(producer, topic, records)
    offsets_known = acks != "0"
    if not offsets_known:
        # With acks=0 the broker sends no response, so there is no offset to report.
        check(
            all(offset is None or offset < 0 for offset in offsets),
            f"acks=0 reported offsets {offsets}",
        )
        offsets = [None] * count
    produced = [to_json(record, offset) for record, offset in zip(records, offsets)]

    consumer = cc.consumer(bootstrap, f"{topic}-reader")
    cc.assign_from(consumer, topic, {p: OFFSET_BEGINNING for p in range(PARTITIONS)})
    ends = {p: sum(1 for r in records if r["partition"] == p) for p in range(PARTITIONS)}
    consumed = cc.consume_until(consumer, topic, ends, f"{topic} (acks={acks})")
    consumer.close()
    check_exact(produced, consumed, offsets_known)
    return {"acks": acks, "topic": topic, "produced": produced, "consumed": consumed}


def main():
    bootstrap, prefix, codec, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    admin_client = cc.admin(bootstrap)
    runs = [
        run(bootstrap, admin_client, f"{prefix}-acks-{acks}", codec, acks, count)
        for acks in ACKS_ALL
    ]
    emit({"codec": codec, "runs": runs})


if __name__ == "__main__":
    main()
