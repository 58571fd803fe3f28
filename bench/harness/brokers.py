"""Starting, killing and stopping the two brokers under test, with identical placement: both
on 127.0.0.1 only, data in a fresh directory under the same scratch filesystem."""

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

STOP_TIMEOUT_S = 30

# kafka-server-start.sh's defaults (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS).
KAFKA_JVM_OPTS = [
    "-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One broker's lifetime in a session: start, maybe kill -9 and restart, stop."""

    name = "?"

    def __init__(self, scratch: str):
        self.data_dir = os.path.join(scratch, f"{self.name}-data")
        self.log_path = os.path.join(scratch, f"{self.name}.log")
        self.process = None
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def command(self) -> list:
        raise NotImplementedError

    def prepare(self):
        """Creates an empty data directory (called once, before the first start)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        os.makedirs(self.data_dir)

    def start(self) -> int:
        """Spawns the broker; returns the wall clock time of the spawn in ns."""
        assert self.process is None
        log = open(self.log_path, "ab")
        spawned_ns = time.time_ns()
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL, env=self.environment())
        log.close()
        return spawned_ns

    def environment(self) -> dict:
        return dict(os.environ)

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self):
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill9()
        self.process = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Sluice(Broker):
    name = "sluice"

    def __init__(self, scratch: str, binary: str):
        super().__init__(scratch)
        self.binary = binary

    def environment(self) -> dict:
        # Kafka runs with its shipped server.properties value (0); an older sluice binary
        # without this setting ignores the variable. Kafka has no node network budget, and
        # loopback is no 1 Gbit/s link: give sluice's budget a capacity the bench never
        # reaches (100 GB/s), and its metrics listener a free port.
        return {**os.environ, "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
                "SLUICE_NETWORK_CAPACITY_BYTES_PER_SEC": "100000000000",
                "SLUICE_METRICS_LISTEN_ADDRESS": "127.0.0.1:0"}

    def command(self) -> list:
        # flush policy `os` is Kafka's default (no fsync on the produce path).
        return [self.binary, "--listen-address", self.bootstrap, "--data-dir", self.data_dir,
                "--log-level", "warn", "--flush-policy", "os"]


class Kafka(Broker):
    name = "kafka"

    def __init__(self, scratch: str, classpath: str):
        super().__init__(scratch)
        self.classpath = classpath
        self.controller_port = free_port()
        self.config_path = os.path.join(scratch, "kafka-server.properties")

    def prepare(self):
        super().prepare()
        with open(self.config_path, "w") as f:
            f.write(self.config())
        cluster_id = subprocess.run(
            ["java", "-cp", self.classpath, "kafka.tools.StorageTool", "random-uuid"],
            check=True, capture_output=True, text=True).stdout.strip() or str(uuid.uuid4())
        subprocess.run(
            ["java", "-cp", self.classpath, "kafka.tools.StorageTool", "format",
             "-t", cluster_id, "-c", self.config_path],
            check=True, capture_output=True)

    def config(self) -> str:
        """KRaft, combined broker+controller, loopback only; everything else Kafka's default
        (so no fsync on the produce path: log.flush.interval.messages is unlimited)."""
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # As in Kafka's shipped config/server.properties: single-node groups form at once.
            "group.initial.rebalance.delay.ms=0",
            "",
        ])

    def command(self) -> list:
        return ["java", *KAFKA_JVM_OPTS, "-cp", self.classpath, "kafka.Kafka", self.config_path]
