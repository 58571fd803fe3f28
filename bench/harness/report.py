"""results.json rows -> report.md (headline and full tables) and PNG charts."""

import os
import statistics
from collections import defaultdict

BROKERS = ("sluice", "kafka")
# metric -> (label, unit, higher is better)
METRICS = {
    "mb_per_s": ("throughput", "MB/s", True),
    "records_per_s": ("records", "rec/s", True),
    "cpu_s_per_gb": ("broker CPU", "CPU s/GB", False),
    "p50_ms": ("p50", "ms", False),
    "p90_ms": ("p90", "ms", False),
    "p99_ms": ("p99", "ms", False),
    "p999_ms": ("p99.9", "ms", False),
    "rss_mib": ("RSS", "MiB", False),
    "ms": ("time", "ms", False),
}
HEADLINE = [
    ("produce 1024B acks=1 none 6p", "ProducerPerformance", "mb_per_s"),
    ("produce 1024B acks=1 none 6p", "ProducerPerformance", "cpu_s_per_gb"),
    ("produce 100B acks=all none 1p", "ProducerPerformance", "mb_per_s"),
    ("produce 1024B acks=all lz4 6p", "ProducerPerformance", "mb_per_s"),
    ("produce 1024B acks=1 none 6p", "rdkafka loadgen", "mb_per_s"),
    ("consume full log 1KiB 6p (cold start)", "*", "mb_per_s"),
    ("consume full log 1KiB 6p (cold start)", "rdkafka loadgen", "mb_per_s"),
    ("tail consume (1 consumer while producing) 1KiB 6p", "*", "mb_per_s"),
    ("fan-out 1 producer x 12 consumers 1KiB 6p", "*", "mb_per_s"),
    ("fan-out 1 producer x 12 consumers 1KiB 6p", "*", "cpu_s_per_gb"),
    ("end-to-end latency 1000/s 100B acks=1", "rdkafka loadgen", "p50_ms"),
    ("end-to-end latency 1000/s 100B acks=1", "rdkafka loadgen", "p99_ms"),
    ("end-to-end latency 1000/s 100B acks=1", "rdkafka loadgen", "p999_ms"),
    ("RSS idle", "-", "rss_mib"),
    ("RSS peak (loaded)", "-", "rss_mib"),
    ("start-up (spawn to first acked produce)", "rdkafka probe", "ms"),
    ("recovery after kill -9 with *", "rdkafka probe", "ms"),
]


def collect(rows):
    """(workload, client, metric) -> broker -> [values over rounds]."""
    table = defaultdict(lambda: defaultdict(list))
    order = []
    for row in rows:
        if row.get("failed"):
            key = (row["workload"], row["client"], "failed")
            table[key][row["broker"]].append(1.0)
            if key not in order:
                order.append(key)
            continue
        for metric in METRICS:
            if metric in row:
                key = (row["workload"], row["client"], metric)
                table[key][row["broker"]].append(float(row[metric]))
                if key not in order:
                    order.append(key)
    return table, order


def fmt(values):
    if not values:
        return "–"
    median = statistics.median(values)
    text = f"{median:,.1f}" if median < 1000 else f"{median:,.0f}"
    if len(values) > 1:
        text += f" ({min(values):,.4g}–{max(values):,.4g})"
    return text


def ceiling(table, name):
    for (workload, _, metric), by_broker in table.items():
        if workload.startswith(name) and metric == "mb_per_s":
            return statistics.median(by_broker["machine"])
    return None


def physical(workload, metric, by_broker, disk, tcp):
    if metric != "mb_per_s":
        return ""
    limit, what = (disk, "disk") if workload.startswith("produce") else (tcp, "TCP")
    if not limit:
        return ""
    parts = [f"{statistics.median(by_broker[b]) / limit * 100:.0f}%"
             for b in BROKERS if by_broker.get(b)]
    return " / ".join(parts) + f" of {what}"


def table_row(table, key, disk, tcp):
    workload, client, metric = key
    by_broker = table[key]
    label, unit, higher = METRICS.get(metric, (metric, "", True))
    ratio = ""
    if by_broker.get("sluice") and by_broker.get("kafka") and metric != "failed":
        kafka = statistics.median(by_broker["kafka"])
        if kafka:
            value = statistics.median(by_broker["sluice"]) / kafka
            ratio = f"{value:.2f}×" if value >= 0.1 else f"{value:.2g}×"
    arrow = "↑" if higher else "↓"
    name = f"{workload} — {client}" if client not in ("-", "*") else workload
    return (f"| {name} | {label} ({unit}, {arrow} better) | {fmt(by_broker.get('sluice'))} | "
            f"{fmt(by_broker.get('kafka'))} | {ratio} | {physical(workload, metric, by_broker, disk, tcp)} |")


def find(table, workload, client, metric):
    for key in table:
        w, c, m = key
        match_w = w.startswith(workload[:-1]) if workload.endswith("*") else w == workload
        if match_w and m == metric and (client == "*" or c == client):
            yield key
            if client == "*":
                return


def median_ratio(table, keys):
    ratios = [statistics.median(table[k]["sluice"]) / statistics.median(table[k]["kafka"])
              for k in keys if table[k].get("sluice") and table[k].get("kafka")
              and statistics.median(table[k]["kafka"])]
    return statistics.median(ratios) if ratios else None


def targets(table):
    """Issue 7's targets, each checked against this run's medians."""
    produce = lambda client: [k for k in table if k[0].startswith("produce") and k[1] == client
                              and k[2] == "mb_per_s"]
    cpu = [k for k in table if k[2] == "cpu_s_per_gb" and table[k].get("kafka")]
    one = lambda spec: next(find(table, *spec), None)
    checks = [
        ("produce throughput ≥ 1.5× Kafka (median ratio over the produce matrix, "
         "ProducerPerformance)", median_ratio(table, produce("ProducerPerformance")),
         lambda r: r >= 1.5),
        ("produce throughput ≥ 1.5× Kafka (median ratio, rdkafka loadgen)",
         median_ratio(table, produce("rdkafka loadgen")), lambda r: r >= 1.5),
        ("p99 end-to-end latency ≤ ⅓ of Kafka's (1000/s, rdkafka)",
         median_ratio(table, [one(("end-to-end latency 1000/s 100B acks=1", "rdkafka loadgen",
                                   "p99_ms"))]), lambda r: r <= 1 / 3),
        ("broker CPU per GB ≤ ½ of Kafka's (median ratio over every workload)",
         median_ratio(table, cpu), lambda r: r <= 0.5),
        ("RSS ≤ 1/10 of Kafka's (peak under load)",
         median_ratio(table, [one(("RSS peak (loaded)", "-", "rss_mib"))]), lambda r: r <= 0.1),
    ]
    lines = ["| target | this run (ratio sluice/Kafka) | met |", "|---|---|---|"]
    for name, ratio, ok in checks:
        if ratio is not None:
            lines.append(f"| {name} | {ratio:.2f}× | {'yes' if ok(ratio) else '**no**'} |")
    start = one(("start-up (spawn to first acked produce)", "rdkafka probe", "ms"))
    if start and table[start].get("sluice"):
        value = statistics.median(table[start]["sluice"])
        lines.append(f"| start-up < 50 ms | {value:.0f} ms | {'yes' if value < 50 else '**no**'} |")
        recovery = one(("recovery after kill -9 with *", "rdkafka probe", "ms"))
        if recovery and table[recovery].get("sluice"):
            after = statistics.median(table[recovery]["sluice"])
            flat = after <= max(2 * value, 100)
            lines.append(f"| start-up does not grow with data ({recovery[0]} vs empty) | "
                         f"{after:,.0f} ms vs {value:.0f} ms | {'yes' if flat else '**no**'} |")
    return lines


def shortfalls(table, order):
    """Every result where sluice's median is worse than Kafka's."""
    lines = []
    for key in order:
        by_broker = table[key]
        metric = key[2]
        if metric not in METRICS or not (by_broker.get("sluice") and by_broker.get("kafka")):
            continue
        sluice, kafka = (statistics.median(by_broker[b]) for b in BROKERS)
        higher = METRICS[metric][2]
        if (sluice < kafka) if higher else (sluice > kafka):
            lines.append(f"- {key[0]} — {key[1]}: {METRICS[metric][0]} {sluice:,.4g} vs "
                         f"{kafka:,.4g} {METRICS[metric][1]}")
    return lines or ["- none in this run"]


def write(out_dir, meta, rows):
    table, order = collect(rows)
    disk, tcp = ceiling(table, "disk write"), ceiling(table, "loopback TCP")
    header = ("| workload | metric | sluice | Kafka | ratio sluice/Kafka | % of physical limit "
              "(sluice / Kafka) |\n|---|---|---|---|---|---|")
    headline = [table_row(table, key, disk, tcp)
                for spec in HEADLINE for key in find(table, *spec)]
    full = [table_row(table, key, disk, tcp) for key in order
            if not key[0].startswith(("disk write", "loopback"))]
    charts = write_charts(out_dir, table, order)
    machine = meta["machine"]
    versions = meta["versions"]
    lines = [
        f"# sluice vs Apache Kafka — {meta['versions'].get('date', '')} on {machine['host']}",
        "",
        f"{'`--quick` run' if meta['quick'] else 'Full run'}: {meta['sizes']['rounds']} round(s), "
        f"brokers alternating (sluice first in odd rounds), took {meta['duration_s'] / 60:.1f} min. "
        "Each cell: median (min–max over rounds). MB = 10^6 bytes.",
        "",
        "## Headline",
        "",
        header, *headline,
        "",
        f"Machine ceilings measured in the same run: disk write (dd 1 MiB blocks, fdatasync) "
        f"**{disk:,.0f} MB/s**, loopback TCP (one connection) **{tcp:,.0f} MB/s**. With no fsync "
        "on the produce path (both brokers), produce can exceed the disk figure while the data "
        "fits the page cache.",
        "",
        *[f"![{name}]({name})" for name in charts],
        "",
        "## Targets (issue 7)",
        "",
        *targets(table),
        "",
        "## Where sluice is slower or bigger than Kafka (medians)",
        "",
        *shortfalls(table, order),
        "",
        "## All results",
        "",
        header, *full,
        "",
        "## Setup",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}. **Shared**: other jobs (builds, test suites) ran on the "
        "same 2 cores during the run, and every client runs on the same cores as the broker, "
        "so absolute figures are low and noisy; the alternation spreads the noise over both.",
        *[f"- {note}" for note in meta["notes"]],
        f"- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "date"),
        "- Both brokers: 127.0.0.1 only, fresh data directory under the same filesystem "
        f"({os.path.dirname(meta['scratch_fs'])}), no fsync on the produce path "
        "(sluice `--flush-policy os`; Kafka defaults: `log.flush.interval.messages` unlimited), "
        "1 GiB segments, 7-day retention, replication factor 1, same partition counts.",
        "- sluice: release build, `sluice --listen-address 127.0.0.1:P --data-dir D "
        "--log-level warn --flush-policy os`.",
        "- Kafka: `java -Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 "
        "-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -cp "
        "bench/target/deps/* kafka.Kafka server.properties` (kafka-server-start.sh's JVM "
        "defaults), KRaft combined broker+controller, storage formatted with "
        "`kafka.tools.StorageTool format`; `group.initial.rebalance.delay.ms=0` as in Kafka's "
        "shipped config.",
        "- Produce: `ProducerPerformance --throughput -1 --producer-props acks=A "
        "compression.type=C linger.ms=5 batch.size=262144` (Java client defaults otherwise, so "
        "idempotence is on for acks=all); `sluice-loadgen produce` (librdkafka, same linger and "
        f"batch size, idempotence off). Records: {meta['sizes']['produce_records_1k']:,} × 1 KiB, "
        f"{meta['sizes']['produce_records_100']:,} × 100 B, each combination into its own topic.",
        "- Consume (cold start): a new consumer reads the 1 KiB / 6-partition log written by the "
        "produce step, from offset 0: `ConsumerPerformance` (group; fetch rate, join time "
        "excluded) when the broker serves groups, `FetchPerformance` (assign), `sluice-loadgen "
        "consume`. The page cache could not be dropped here (no permission), so \"cold\" means "
        "a cold consumer, not a cold disk.",
        f"- Tail consume / fan-out: `sluice-loadgen fanout`: 1 producer writes "
        f"{meta['sizes']['fanout_records']:,} × 1 KiB while 1 or 12 consumers (each its own "
        "group when the broker serves groups, else assign()) read all of it; egress = bytes "
        "delivered to all consumers / wall time; CPU per GB of egress.",
        f"- Latency: `sluice-loadgen latency --rate 1000 --seconds {meta['sizes']['latency_seconds']}` "
        "(100 B, acks=1, linger 0, first second discarded, clock of one process), and Kafka's "
        f"`EndToEndLatency` ({meta['sizes']['e2e_records']:,} records one at a time; it prints "
        "whole milliseconds).",
        "- Start-up: spawn to the first produce acknowledged (acks=all, topic auto-created) by "
        "`sluice-loadgen probe`, which polls the port every 1 ms first. Recovery: "
        f"{meta['sizes']['recovery_mb']:,} MB written (1 KiB records, 6 partitions), SIGKILL, "
        "restart on the same data, same probe into that topic. (10 GB recovery not run: disk "
        "and time budget of this machine.)",
        "- Broker CPU: utime+stime of the broker process from /proc/PID/stat around each "
        "workload. RSS: VmRSS 2 s after start-up (idle), VmHWM after the workloads (peak).",
        "",
        "## Commands",
        "",
        f"`{meta['command']}` — see bench/README.md. Every broker and tool command line of round 1 "
        "is in [commands.txt](commands.txt) (later rounds differ only in topic suffixes).",
        "",
    ]
    perf_path = os.path.join(out_dir, "perf-sluice.txt")
    if os.path.exists(perf_path):
        with open(perf_path) as f:
            lines += ["## Profile of sluice (perf)", "", "```", f.read().rstrip(), "```", ""]
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(out_dir, "headline.md"), "w") as f:
        f.write("\n".join([header, *headline]) + "\n")


def write_charts(out_dir, table, order):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    charts = []
    throughput = [k for k in order if k[2] == "mb_per_s" and table[k].get("sluice")
                  and table[k].get("kafka")]
    if throughput:
        charts.append(bar_chart(plt, out_dir, "throughput.png", table, throughput,
                                "throughput, MB/s (median, min–max)"))
    cpu = [k for k in order if k[2] == "cpu_s_per_gb" and table[k].get("sluice")
           and table[k].get("kafka")]
    if cpu:
        charts.append(bar_chart(plt, out_dir, "cpu-per-gb.png", table, cpu,
                                "broker CPU seconds per GB moved (lower is better)"))
    # EndToEndLatency prints whole milliseconds (0 for anything under 1 ms): table only.
    latency = [k for k in order if k[0].startswith("end-to-end") and k[2].endswith("_ms")
               and k[1] == "rdkafka loadgen"]
    if latency:
        charts.append(latency_chart(plt, out_dir, table, latency))
    return charts


def bar_chart(plt, out_dir, name, table, keys, title):
    labels = [f"{w} — {c}".replace("rdkafka loadgen", "rdkafka") for w, c, _ in keys]
    fig, ax = plt.subplots(figsize=(10, 0.38 * len(keys) + 1.5))
    height = 0.4
    for offset, broker, color in ((-height / 2, "sluice", "#1f77b4"), (height / 2, "kafka", "#d62728")):
        values = [table[k][broker] for k in keys]
        medians = [statistics.median(v) for v in values]
        low = [m - min(v) for m, v in zip(medians, values)]
        high = [max(v) - m for m, v in zip(medians, values)]
        ax.barh([i + offset for i in range(len(keys))], medians, height, xerr=[low, high],
                label=broker, color=color, capsize=2)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=80)
    plt.close(fig)
    return name


def latency_chart(plt, out_dir, table, keys):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = {"p50_ms": 50, "p90_ms": 90, "p99_ms": 99, "p999_ms": 99.9}
    for workload in sorted({k[0] for k in keys}):
        for broker, color in (("sluice", "#1f77b4"), ("kafka", "#d62728")):
            xs, ys = [], []
            for metric, pct in points.items():
                values = table.get((workload, next(k[1] for k in keys if k[0] == workload), metric), {})
                if values and values.get(broker):
                    xs.append(pct)
                    ys.append(statistics.median(values[broker]))
            if xs:
                ax.plot([str(x) for x in xs], ys, "-o", color=color,
                        label=f"{broker}: {workload.replace('end-to-end latency ', '')}")
    ax.set_yscale("log")
    ax.set_xlabel("percentile")
    ax.set_ylabel("end-to-end latency, ms (log)")
    ax.set_title("end-to-end latency at a fixed rate, librdkafka (median over rounds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "latency.png"), dpi=80)
    plt.close(fig)
    return "latency.png"


if __name__ == "__main__":
    # Re-renders a results directory: python3 bench/harness/report.py DIR
    import json
    import sys

    with open(os.path.join(sys.argv[1], "results.json")) as f:
        results = json.load(f)
    write(sys.argv[1], results["meta"], results["rows"])
