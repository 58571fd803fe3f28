"""Captures the requests real old clients send, as test vectors for wire/tests/legacy_vectors.rs.

usage: capture.py PROXY_PORT BROKER_HOST:PORT OUT_DIR

Runs a loopback proxy on 127.0.0.1:PROXY_PORT in front of a broker (a sluice on 127.0.0.1
started with `--advertised-address 127.0.0.1:PROXY_PORT`, so every client connection goes
through the proxy), points kafka-python forced
to old protocols at it, and writes the first client frame of every (scenario, api key, version)
to OUT_DIR/<scenario>-<api>-v<version>.bin (frame without its length prefix). Records are
deterministic ("key-<i>" / "value-<i>"); timestamps (magic 1) are whatever the client sent.
"""

import os
import socket
import struct
import sys
import threading

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

API_NAMES = {0: "produce", 1: "fetch", 2: "list_offsets", 3: "metadata", 8: "offset_commit",
             9: "offset_fetch", 10: "find_coordinator", 11: "join_group", 12: "heartbeat",
             13: "leave_group", 14: "sync_group"}


class Proxy:
    def __init__(self, port, upstream, out_dir):
        self.upstream = upstream
        self.out_dir = out_dir
        self.scenario = "none"
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.listener.accept()
            host, port = self.upstream.split(":")
            server = socket.create_connection((host, int(port)))
            threading.Thread(target=self.pump_requests, args=(client, server), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client), daemon=True).start()

    def pump(self, source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        target.close()

    def pump_requests(self, client, server):
        buffered = b""
        try:
            while data := client.recv(65536):
                buffered += data
                while len(buffered) >= 4:
                    (length,) = struct.unpack(">i", buffered[:4])
                    if len(buffered) < 4 + length:
                        break
                    frame = buffered[4:4 + length]
                    buffered = buffered[4 + length:]
                    self.record(frame)
                    server.sendall(struct.pack(">i", length) + frame)
        except OSError:
            pass
        server.close()

    def record(self, frame):
        api_key, version = struct.unpack(">hh", frame[:4])
        name = f"{self.scenario}-{API_NAMES.get(api_key, api_key)}-v{version}.bin"
        path = os.path.join(self.out_dir, name)
        if not os.path.exists(path):
            with open(path, "wb") as out:
                out.write(frame)


def produce(bootstrap, topic, api_version, codec):
    producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=api_version,
                             compression_type=codec, acks=1, linger_ms=50)
    futures = [producer.send(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode(),
                             partition=0) for i in range(3)]
    producer.flush()
    offsets = [f.get(timeout=30).offset for f in futures]
    producer.close()
    return offsets


def consume(bootstrap, topic, api_version, group):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, api_version=api_version,
                             group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    records = []
    for record in consumer:
        records.append((record.offset, record.key, record.value))
    consumer.commit({partition: __import__("kafka").OffsetAndMetadata(len(records), "", -1)})
    committed = consumer.committed(partition)
    consumer.close()
    return records, committed


def main():
    port, upstream, out_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.makedirs(out_dir, exist_ok=True)
    proxy = Proxy(port, upstream, out_dir)
    bootstrap = f"127.0.0.1:{proxy.port}"
    for api_version, label in [((0, 8, 2), "kp082"), ((0, 9), "kp09"), ((0, 10, 0), "kp0100")]:
        for codec in [None, "gzip", "snappy", "lz4"]:
            proxy.scenario = f"{label}-{codec or 'none'}"
            topic = f"capture-{label}-{codec or 'none'}"
            print(proxy.scenario, produce(bootstrap, topic, api_version, codec), flush=True)
    for api_version, label in [((0, 8, 1), "kp081"), ((0, 8, 2), "kp082"), ((0, 9), "kp09"),
                               ((0, 10, 0), "kp0100"), ((0, 10, 1), "kp0101")]:
        proxy.scenario = f"{label}-consume"
        print(proxy.scenario, consume(bootstrap, "capture-kp09-gzip", api_version,
                                      f"capture-{label}"), flush=True)


if __name__ == "__main__":
    main()
