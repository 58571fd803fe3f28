"""One broker session: start a fresh broker, run every workload against it, kill -9 it with
data and time the recovery. Each result is a dict row: broker, workload, client, metrics."""

import itertools
import time

from brokers import Broker
from procstat import cpu_seconds, memory_kib
from tools import Tools, ToolError

IDLE_SETTLE_S = 2.0
PARTITION_COUNTS = (1, 6)
RECORD_SIZES = (100, 1024)
ACKS = ("1", "all")
COMPRESSIONS = ("none", "lz4")
FANOUT_CONSUMERS = 12
LATENCY_RATE_PER_S = 1000


def produce_id(size, acks, compression, partitions):
    return f"produce {size}B acks={acks} {compression} {partitions}p"


class Session:
    def __init__(self, broker: Broker, tools: Tools, sizes: dict, round_index: int, log):
        self.broker = broker
        self.tools = tools
        self.sizes = sizes
        self.round = round_index
        self.log = log
        self.rows = []
        self.groups = False

    def topic(self, name: str) -> str:
        return f"{name}-r{self.round}"

    def add(self, workload: str, client: str, **metrics):
        row = {"round": self.round, "broker": self.broker.name, "workload": workload,
               "client": client, **metrics}
        self.rows.append(row)
        self.log.write(f"RESULT {row}\n")
        self.log.flush()
        print(f"  {self.broker.name:6} {workload:38} {client:22} "
              + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in metrics.items()), flush=True)

    def measured(self, workload: str, client: str, action, bytes_key="bytes"):
        """Runs action() and records its result plus the broker CPU it cost."""
        cpu_before = cpu_seconds(self.broker.pid)
        try:
            result = action()
        except ToolError as e:
            print(f"  {self.broker.name:6} {workload:38} {client:22} FAILED: {str(e)[:300]}",
                  flush=True)
            self.add(workload, client, failed=True)
            return None
        cpu_s = cpu_seconds(self.broker.pid) - cpu_before
        result["broker_cpu_s"] = cpu_s
        moved = result.get(bytes_key)
        if moved:
            result["cpu_s_per_gb"] = cpu_s / (moved / 1e9)
        self.add(workload, client, **result)
        return result

    def run(self):
        self.broker.prepare()
        self.start_up("start-up (spawn to first acked produce)", self.topic("startup"))
        time.sleep(IDLE_SETTLE_S)
        self.add("RSS idle", "-", rss_mib=memory_kib(self.broker.pid)["VmRSS"] / 1024)
        self.groups = self.detect_groups()
        self.warm_up()
        self.produce_matrix()
        self.consume_full_log()
        self.fan_out()
        self.latency()
        self.add("RSS peak (loaded)", "-", rss_mib=memory_kib(self.broker.pid)["VmHWM"] / 1024)
        self.recovery()
        self.broker.cleanup()
        return self.rows

    def start_up(self, workload: str, topic: str):
        spawned_ns = self.broker.start()
        try:
            acked = self.tools.loadgen("probe", timeout_s=150, bootstrap=self.broker.bootstrap,
                                       topic=topic)
        except ToolError as e:
            raise SystemExit(f"{self.broker.name} did not start: {e}\nsee {self.broker.log_path}")
        self.add(workload, "rdkafka probe", ms=(acked["acked_epoch_ns"] - spawned_ns) / 1e6)

    def detect_groups(self) -> bool:
        """Whether the broker serves consumer groups (sluice gains them over time)."""
        try:
            self.tools.loadgen("consume", timeout_s=45, bootstrap=self.broker.bootstrap,
                               topic=self.topic("startup"), records=1,
                               group=f"probe-{self.round}")
            return True
        except ToolError:
            print(f"  {self.broker.name}: no consumer groups; group workloads use assign()")
            return False

    def warm_up(self):
        """Unrecorded produce and consume, so a JVM broker's JIT compilation does not land on
        the first measured workload (steady state is what users run in)."""
        topic = self.topic("warmup")
        self.create_topics(6, [topic])
        for size, records in ((100, self.sizes["warmup_records"] * 4),
                              (1024, self.sizes["warmup_records"])):
            self.tools.loadgen("produce", bootstrap=self.broker.bootstrap, topic=topic,
                               records=records, size=size, acks="1")
        self.tools.loadgen("consume", bootstrap=self.broker.bootstrap, topic=topic,
                           records=self.sizes["warmup_records"] * 5)

    def create_topics(self, partitions: int, names: list):
        self.tools.loadgen("create-topics", bootstrap=self.broker.bootstrap,
                           partitions=partitions, positional=names)

    def records_for(self, size: int) -> int:
        return self.sizes["produce_records_1k"] if size >= 1024 else self.sizes["produce_records_100"]

    def produce_matrix(self):
        combos = list(itertools.product(RECORD_SIZES, ACKS, COMPRESSIONS, PARTITION_COUNTS))
        for partitions in PARTITION_COUNTS:
            names = [self.topic(f"pp-{s}-{a}-{c}-{p}") for s, a, c, p in combos if p == partitions]
            names += [self.topic(f"rk-{s}-{a}-{c}-{p}") for s, a, c, p in combos if p == partitions]
            self.create_topics(partitions, names)
        for size, acks, compression, partitions in combos:
            records = self.records_for(size)
            workload = produce_id(size, acks, compression, partitions)
            topic = self.topic(f"pp-{size}-{acks}-{compression}-{partitions}")
            self.measured(workload, "ProducerPerformance", lambda: self.tools.producer_performance(
                self.broker.bootstrap, topic, records, size, acks, compression))
            if compression == "none" and (partitions == 6 or self.sizes["full_rdkafka"]):
                topic = self.topic(f"rk-{size}-{acks}-{compression}-{partitions}")
                self.measured(workload, "rdkafka loadgen", lambda: self.tools.loadgen(
                    "produce", bootstrap=self.broker.bootstrap, topic=topic, records=records,
                    size=size, acks=acks, compression=compression))

    def consume_full_log(self):
        """Fresh consumers reading a log the produce matrix wrote (1 KiB, 6 partitions)."""
        size = 1024
        records = self.records_for(size)
        topic = self.topic(f"pp-{size}-1-none-6")
        workload = "consume full log 1KiB 6p (cold start)"
        bytes_total = records * size
        if self.groups:
            self.measured(workload, "ConsumerPerformance", lambda: {
                **self.tools.consumer_performance(self.broker.bootstrap, topic, records,
                                                  f"cp-{self.round}"), "bytes": bytes_total})
        self.measured(workload, "FetchPerformance (assign)", lambda: {
            **self.tools.fetch_performance(self.broker.bootstrap, topic, records, size),
            "bytes": bytes_total})
        self.measured(workload, "rdkafka loadgen", lambda: self.tools.loadgen(
            "consume", bootstrap=self.broker.bootstrap, topic=topic, records=records,
            **({"group": f"rk-{self.round}"} if self.groups else {})))

    def fan_out(self):
        records = self.sizes["fanout_records"]
        for consumers in (1, FANOUT_CONSUMERS):
            topic = self.topic(f"fanout-{consumers}")
            self.create_topics(6, [topic])
            label = "tail consume (1 consumer while producing)" if consumers == 1 else \
                f"fan-out 1 producer x {consumers} consumers"
            client = "rdkafka loadgen " + ("groups" if self.groups else "assign")
            self.measured(label + " 1KiB 6p", client, lambda: self.tools.loadgen(
                "fanout", bootstrap=self.broker.bootstrap, topic=topic, records=records,
                size=1024, consumers=consumers, groups=str(self.groups).lower()),
                bytes_key="egress_bytes")

    def latency(self):
        topic = self.topic("latency")
        e2e_topic = self.topic("e2e")
        self.create_topics(1, [topic, e2e_topic])
        self.measured(f"end-to-end latency {LATENCY_RATE_PER_S}/s 100B acks=1",
                      "rdkafka loadgen", lambda: self.tools.loadgen(
                          "latency", bootstrap=self.broker.bootstrap, topic=topic,
                          rate=LATENCY_RATE_PER_S, seconds=self.sizes["latency_seconds"],
                          size=100, acks="1"))
        self.measured("end-to-end latency 1-at-a-time 100B acks=1", "EndToEndLatency",
                      lambda: self.tools.end_to_end_latency(
                          self.broker.bootstrap, e2e_topic, self.sizes["e2e_records"], 100))

    def recovery(self):
        """Writes recovery_mb of data, kills the broker with SIGKILL, restarts it on the same
        data and times spawn-to-first-acked-produce."""
        topic = self.topic("recovery")
        self.create_topics(6, [topic])
        records = self.sizes["recovery_mb"] * 1_000_000 // 1024
        self.tools.loadgen("produce", bootstrap=self.broker.bootstrap, topic=topic,
                           records=records, size=1024, acks="1")
        self.broker.kill9()
        self.start_up(f"recovery after kill -9 with {self.sizes['recovery_mb']} MB", topic)
