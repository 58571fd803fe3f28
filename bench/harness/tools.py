"""Running the load generators and parsing what they print: Kafka's Java tools
(ProducerPerformance, ConsumerPerformance, EndToEndLatency), bench/src/FetchPerformance and
bench/loadgen (rdkafka)."""

import json
import re
import subprocess

TOOL_TIMEOUT_S = 600
JAVA_TOOL_OPTS = ["-Xms256m", "-Xmx1g"]


class ToolError(RuntimeError):
    pass


COMMANDS = []


def run(command: list, log, timeout_s: float = TOOL_TIMEOUT_S) -> str:
    """Runs a tool, logs its command line and output, returns stdout; fails on exit != 0."""
    COMMANDS.append(" ".join(command))
    log.write("$ " + " ".join(command) + "\n")
    log.flush()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"timed out after {timeout_s} s: {' '.join(command)}") from e
    log.write(done.stdout[-4000:] + done.stderr[-4000:] + "\n")
    log.flush()
    if done.returncode != 0:
        raise ToolError(f"exit {done.returncode}: {' '.join(command)}\n{done.stderr[-2000:]}")
    return done.stdout


class Tools:
    def __init__(self, classpath: str, loadgen: str, log):
        self.classpath = classpath
        self.loadgen_binary = loadgen
        self.log = log

    def java(self, main_class: str, *args) -> str:
        return run(["java", *JAVA_TOOL_OPTS, "-cp", self.classpath, main_class, *args], self.log)

    def loadgen(self, command: str, timeout_s: float = TOOL_TIMEOUT_S, **flags) -> dict:
        argv = [self.loadgen_binary, command]
        positional = flags.pop("positional", [])
        for key, value in flags.items():
            argv += ["--" + key.replace("_", "-"), str(value)]
        argv += positional
        return json.loads(run(argv, self.log, timeout_s).strip().splitlines()[-1])

    def producer_performance(self, bootstrap, topic, records, size, acks, compression) -> dict:
        out = self.java(
            "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
            "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
            "--producer-props", f"bootstrap.servers={bootstrap}", f"acks={acks}",
            f"compression.type={compression}", "linger.ms=5", "batch.size=262144")
        line = out.strip().splitlines()[-1]
        match = re.search(
            r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max "
            r"latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", line)
        if not match:
            raise ToolError(f"unexpected ProducerPerformance output: {line}")
        rps = float(match.group(1))
        return {"records": records, "bytes": records * size, "records_per_s": rps,
                "mb_per_s": rps * size / 1e6, "p50_ms": float(match.group(5)),
                "p99_ms": float(match.group(7))}

    def consumer_performance(self, bootstrap, topic, records, group) -> dict:
        """Kafka's ConsumerPerformance (a group member); fetch rate excludes the join time."""
        out = self.java(
            "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap,
            "--topic", topic, "--messages", str(records), "--group", group, "--timeout", "30000")
        fields = out.strip().splitlines()[-1].split(",")
        # start, end, MB, MB/s, nMsg, nMsg/s, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s
        if len(fields) < 10 or int(float(fields[4])) < records:
            raise ToolError(f"unexpected ConsumerPerformance output: {out[-500:]}")
        return {"records": records, "mb_per_s": float(fields[8]) * 1.048576,
                "records_per_s": float(fields[9]), "join_ms": float(fields[6])}

    def fetch_performance(self, bootstrap, topic, records, size) -> dict:
        out = self.java("FetchPerformance", bootstrap, topic, str(records))
        match = re.search(r"([\d.]+) records/sec", out)
        if not match:
            raise ToolError(f"unexpected FetchPerformance output: {out[-500:]}")
        rps = float(match.group(1))
        return {"records": records, "records_per_s": rps, "mb_per_s": rps * size / 1e6}

    def end_to_end_latency(self, bootstrap, topic, records, size) -> dict:
        out = self.java("org.apache.kafka.tools.EndToEndLatency", bootstrap, topic,
                        str(records), "1", str(size))
        avg = re.search(r"Avg latency: ([\d.]+) ms", out)
        pct = re.search(r"50th = (\d+), 99th = (\d+), 99.9th = (\d+)", out)
        if not (avg and pct):
            raise ToolError(f"unexpected EndToEndLatency output: {out[-500:]}")
        return {"avg_ms": float(avg.group(1)), "p50_ms": float(pct.group(1)),
                "p99_ms": float(pct.group(2)), "p999_ms": float(pct.group(3))}
