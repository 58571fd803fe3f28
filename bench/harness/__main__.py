"""The side-by-side benchmark: machine ceilings, then alternating sluice/Kafka sessions,
then a perf profile of sluice, then the report (see bench/README.md).

Usage: python3 bench/harness --sluice BIN --loadgen BIN --classpath CP --out DIR [--quick]
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402
from brokers import Kafka, Sluice  # noqa: E402
from procstat import loadavg  # noqa: E402
from tools import COMMANDS, Tools  # noqa: E402
from workloads import Session  # noqa: E402

QUICK = {"rounds": 1, "produce_records_1k": 100_000, "produce_records_100": 500_000,
         "fanout_records": 30_000, "latency_seconds": 5, "e2e_records": 1000,
         "recovery_mb": 200, "dd_mib": 256, "full_rdkafka": False, "warmup_records": 50_000}
FULL = {"rounds": 3, "produce_records_1k": 400_000, "produce_records_100": 2_000_000,
        "fanout_records": 150_000, "latency_seconds": 15, "e2e_records": 3000,
        "recovery_mb": 1000, "dd_mib": 1024, "full_rdkafka": True,
        "warmup_records": 200_000}


def ceilings(tools: Tools, scratch: str, dd_mib: int, round_index: int) -> list:
    """Loopback TCP and sequential disk write, measured in the same run as the brokers."""
    tcp = tools.loadgen("tcp-ceiling", seconds=3)
    target = os.path.join(scratch, "dd.bin")
    started = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={dd_mib}",
                    "conv=fdatasync"], check=True, capture_output=True)
    seconds = time.monotonic() - started
    os.remove(target)
    rows = [{"round": round_index, "broker": "machine", "workload": "loopback TCP (1 connection)",
             "client": "loadgen tcp-ceiling", "mb_per_s": tcp["mb_per_s"]},
            {"round": round_index, "broker": "machine", "workload": "disk write (dd, fdatasync)",
             "client": "dd", "mb_per_s": dd_mib * 1048576 / seconds / 1e6}]
    for row in rows:
        print(f"  machine {row['workload']:38} {row['mb_per_s']:.0f} MB/s", flush=True)
    return rows


def perf_report(perf_data: str, *options) -> str:
    return subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                           *options], capture_output=True, text=True).stdout


def perf_summary(perf_data: str, header: str) -> str:
    """Where sluice's CPU goes: kernel/libc/sluice split, the top 20 symbols, and who calls
    the top user-space copies (memmove, memset)."""
    by_dso = perf_report(perf_data, "--sort", "dso", "-g", "none")
    samples = next((l.strip("# ") for l in by_dso.splitlines() if l.startswith("# Samples")), "")
    rows = lambda text, n: [re.sub(r"[\s-]+$", "", l) for l in text.splitlines()
                            if l.strip() and not l.startswith("#")][:n]
    symbols = perf_report(perf_data, "--sort", "symbol", "-g", "none", "--percent-limit", "0.5")
    parts = [header, f"{samples}\n", "By object:", *rows(by_dso, 5), "",
             "Top 20 symbols (self time):", *rows(symbols, 20), ""]
    for symbol in ("__memmove_avx512_unaligned_erms", "__memset_avx512_unaligned_erms"):
        callers = perf_report(perf_data, "--sort", "symbol", "--symbols", symbol,
                              "-g", "caller,0.5,callee,function,percent", "--percent-limit", "1")
        lines = [l.rstrip() for l in callers.splitlines()
                 if l.strip() and not l.startswith("#") and ("sluice" in l or "%" in l)][:16]
        if lines:
            parts += [f"Callers of {symbol} in sluice (call chains, dwarf):", *lines, ""]
    return "\n".join(parts) + "\n"


def profile_sluice(args, tools: Tools, scratch: str, out_dir: str, sizes: dict):
    """perf record (cpu-clock: this VM has no hardware counters; dwarf call graphs) of sluice
    under a produce and a consume; writes a text summary of `perf report`."""
    broker = Sluice(scratch, args.sluice)
    broker.prepare()
    broker.start()
    perf_data = os.path.join(scratch, "perf.data")
    try:
        tools.loadgen("probe", bootstrap=broker.bootstrap, topic="profile")
        tools.loadgen("create-topics", bootstrap=broker.bootstrap, partitions=6,
                      positional=["profile-1k"])
        recorder = subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-F", "999", "--call-graph", "dwarf,16384",
             "-o", perf_data, "-p", str(broker.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        records = sizes["produce_records_1k"] * 2
        tools.loadgen("produce", bootstrap=broker.bootstrap, topic="profile-1k",
                      records=records, size=1024, acks="1")
        tools.loadgen("consume", bootstrap=broker.bootstrap, topic="profile-1k", records=records)
        recorder.send_signal(2)
        recorder.wait(120)
        header = ("perf record -e cpu-clock -F 999 --call-graph dwarf -p <sluice> during "
                  f"sluice-loadgen produce ({records} x 1 KiB, acks=1, 6 partitions) then "
                  "sluice-loadgen consume of the same records; perf report --no-children\n")
        with open(os.path.join(out_dir, "perf-sluice.txt"), "w") as f:
            f.write(perf_summary(perf_data, header))
        print("  perf profile written", flush=True)
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        with open(os.path.join(out_dir, "perf-sluice.txt"), "w") as f:
            f.write(f"perf profile not taken: {e}\n")
    finally:
        broker.cleanup()
        if os.path.exists(perf_data):
            os.remove(perf_data)


def write_commands(out_dir: str, broker):
    """The exact command lines of round 1 (later rounds differ only in topic suffixes)."""
    with open(os.path.join(out_dir, "commands.txt"), "a") as f:
        f.write(f"# {broker.name}: " + " ".join(broker.command()) + "\n")
        if hasattr(broker, "config"):
            f.writelines(f"#   {line}\n" for line in broker.config().splitlines())
        f.writelines(command + "\n" for command in COMMANDS)
        f.write("\n")
    COMMANDS.clear()


def machine_description() -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"host": platform.node(), "kernel": platform.release(), "cpu": cpu,
            "cores": os.cpu_count(), "memory_gib": round(mem_kib / 1048576, 1)}


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--sluice", "--loadgen", "--classpath", "--out", "--versions"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--command-line", default="bench/run.sh")
    parser.add_argument("--profile-only", action="store_true",
                        help="only (re)take the perf profile of sluice into --out")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    if args.rounds:
        sizes["rounds"] = args.rounds
    os.makedirs(args.out, exist_ok=True)
    if not args.profile_only and os.path.exists(os.path.join(args.out, "commands.txt")):
        os.remove(os.path.join(args.out, "commands.txt"))
    scratch = tempfile.mkdtemp(prefix="sluice-bench-", dir=os.environ.get("TMPDIR", "/tmp"))
    log = open(os.path.join(scratch, "harness.log"), "w")
    tools = Tools(args.classpath, args.loadgen, log)
    if args.profile_only:
        profile_sluice(args, tools, scratch, args.out, sizes)
        return
    started = time.time()
    rows, notes = [], []
    for round_index in range(1, sizes["rounds"] + 1):
        print(f"==> round {round_index} (load average {loadavg()})", flush=True)
        notes.append(f"round {round_index} load average at start: {loadavg()}")
        rows += ceilings(tools, scratch, sizes["dd_mib"], round_index)
        order = [Sluice(scratch, args.sluice), Kafka(scratch, args.classpath)]
        if round_index % 2 == 0:
            order.reverse()
        for broker in order:
            print(f"==> round {round_index}: {broker.name} on {broker.bootstrap}", flush=True)
            session = Session(broker, tools, sizes, round_index, log)
            try:
                rows += session.run()
            finally:
                broker.cleanup()
            if round_index == 1:
                write_commands(args.out, broker)
            if broker.name == "sluice":
                notes.append(f"round {round_index}: sluice consumer groups "
                             f"{'served' if session.groups else 'not served (assign() used)'}")
    print("==> perf profile of sluice", flush=True)
    profile_sluice(args, tools, scratch, args.out, sizes)
    duration_s = time.time() - started
    with open(args.versions) as f:
        versions = json.load(f)
    meta = {"quick": args.quick, "sizes": sizes, "duration_s": duration_s,
            "machine": machine_description(), "versions": versions, "notes": notes,
            "command": args.command_line.strip(), "scratch_fs": scratch}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    report.write(args.out, meta, rows)
    log.close()
    print(f"==> done in {duration_s / 60:.1f} min; results in {args.out} "
          f"(full log: {log.name})", flush=True)


if __name__ == "__main__":
    main()
