"""Produce and consume over a secured listener with confluent-kafka or kafka-python.

usage: security_clients.py CLIENT BOOTSTRAP TOPIC COUNT SETTINGS_JSON
  CLIENT: confluent | kafka-python
  SETTINGS_JSON: librdkafka-style security settings (security.protocol, sasl.mechanism,
  sasl.username, sasl.password, ssl.ca.location, ssl.certificate.location, ssl.key.location;
  api.version for kafka-python only).
  With COUNT 0 the script only connects (Metadata) and reports the error, if any.

Prints {"produced": [...], "consumed": [...]} (record values, in order) or {"error": "..."}.
"""

import json
import sys

from common import DEADLINE_S, Deadline, check, fail


def values(topic, count):
    return [f"{topic}-secure-{index}" for index in range(count)]


def confluent(bootstrap, topic, count, settings):
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    base = {"bootstrap.servers": bootstrap, "broker.address.family": "v4", **settings}
    if count == 0:
        # librdkafka reports why a connection failed through error_cb; list_topics only
        # says the transport failed.
        errors = []
        admin = AdminClient({**base, "error_cb": lambda error: errors.append(str(error))})
        try:
            admin.list_topics(timeout=15)
        except KafkaException as error:
            errors.append(str(error.args[0]))
            # error_cb runs from poll(): serve it until the cause shows up.
            deadline = Deadline(15, "the connection error")
            while not any("SASL" in e or "SSL" in e for e in errors) and not deadline.expired():
                admin.poll(0.2)
        return {"error": " | ".join(errors) if errors else None}
    producer = Producer({**base, "acks": "all", "enable.idempotence": True})
    produced = values(topic, count)
    for value in produced:
        producer.produce(topic, value=value.encode())
    check(producer.flush(DEADLINE_S) == 0, "records left unsent")
    consumer = Consumer(
        {**base, "group.id": f"{topic}-group", "auto.offset.reset": "earliest",
         "enable.auto.commit": False}
    )
    consumer.subscribe([topic])
    consumed = []
    deadline = Deadline(what="records")
    while len(consumed) < count:
        deadline.check(f"{len(consumed)}/{count}")
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            fail(f"consume error: {message.error()}")
        consumed.append(message.value().decode())
    consumer.commit(asynchronous=False)
    consumer.close()
    return {"produced": produced, "consumed": consumed}


def kafka_python_settings(settings):
    mapping = {
        "security.protocol": "security_protocol",
        "sasl.mechanism": "sasl_mechanism",
        "sasl.username": "sasl_plain_username",
        "sasl.password": "sasl_plain_password",
        "ssl.ca.location": "ssl_cafile",
        "ssl.certificate.location": "ssl_certfile",
        "ssl.key.location": "ssl_keyfile",
        # A list such as [0, 10, 0]: an old broker version, whose SaslHandshake v0 is
        # followed by raw SASL tokens instead of SaslAuthenticate.
        "api.version": "api_version",
    }
    converted = {mapping[key]: value for key, value in settings.items()}
    if "api_version" in converted:
        converted["api_version"] = tuple(converted["api_version"])
    return converted


def kafka_python(bootstrap, topic, count, settings):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    base = {"bootstrap_servers": bootstrap, **kafka_python_settings(settings)}
    if count == 0:
        # kafka-python logs why a connection failed and then only reports a bootstrap
        # timeout: collect its log lines about the failure.
        import logging

        logged = []

        class Collect(logging.Handler):
            def emit(self, record):
                text = record.getMessage()
                if "uthentication" in text or "SSL" in text:
                    logged.append(text)

        logging.getLogger("kafka").addHandler(Collect(level=logging.WARNING))
        try:
            admin = KafkaAdminClient(request_timeout_ms=15000, **base)
            admin.list_topics()
            admin.close()
        except KafkaError as error:
            return {"error": " | ".join(logged + [type(error).__name__ + ": " + str(error)])}
        return {"error": None}
    producer = KafkaProducer(acks="all", **base)
    produced = values(topic, count)
    for value in produced:
        producer.send(topic, value=value.encode()).get(timeout=DEADLINE_S)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        topic, group_id=f"{topic}-group", auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=int(DEADLINE_S * 1000), **base
    )
    consumed = []
    for message in consumer:
        consumed.append(message.value.decode())
        if len(consumed) == count:
            break
    consumer.commit()
    consumer.close()
    return {"produced": produced, "consumed": consumed}


def main():
    client, bootstrap, topic, count, settings = sys.argv[1:6]
    settings = json.loads(settings)
    run = {"confluent": confluent, "kafka-python": kafka_python}[client]
    print(json.dumps(run(bootstrap, topic, int(count), settings)))


if __name__ == "__main__":
    main()
