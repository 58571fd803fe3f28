"""One confluent-kafka (librdkafka) action against an authorising broker.

usage: acl_clients.py ACTION BOOTSTRAP TOPIC COUNT SETTINGS_JSON
  ACTION: produce (COUNT values TOPIC-acl-i, no idempotence) | read (assign partition 0 from
  the start, no group, until COUNT values or an error).
Prints {"values": [...], "error": "<librdkafka error name>" or null}.
"""

import json
import sys

from common import Deadline


def produce(base, topic, count):
    from confluent_kafka import Producer

    errors = []
    values = []

    def delivered(error, message):
        if error is not None:
            errors.append(error.name())
        else:
            values.append(message.value().decode())

    producer = Producer({**base, "acks": "all", "message.timeout.ms": 20000})
    for index in range(count):
        producer.produce(topic, value=f"{topic}-acl-{index}".encode(), on_delivery=delivered)
    producer.flush(30)
    return {"values": values, "error": errors[0] if errors else None}


def read(base, topic, count):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    consumer = Consumer({**base, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values = []
    deadline = Deadline(what="records or an error")
    error = None
    while len(values) < count and error is None:
        deadline.check(f"{len(values)}/{count}")
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            error = message.error().name()
            continue
        values.append(message.value().decode())
    consumer.close()
    return {"values": values, "error": error}


def main():
    action, bootstrap, topic, count, settings = sys.argv[1:6]
    base = {"bootstrap.servers": bootstrap, "broker.address.family": "v4", **json.loads(settings)}
    run = {"produce": produce, "read": read}[action]
    print(json.dumps(run(base, topic, int(count))))


if __name__ == "__main__":
    main()
