"""`python -m endure.bench <workload> [options]`: one entry point for every benchmark.

Each workload is a module in this package exposing ``add_parser(subparsers)``, which adds
its subcommand and sets ``func`` (taking the parsed args, returning an exit code) as the
parser default. To add one, write the module and append its name to WORKLOADS.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Module names under endure.bench, in the order they appear in --help.
WORKLOADS: list[str] = [
    "log_bench",  # python -m endure.bench log: virtual log append throughput vs raw RocksDB
    "cluster_bench",  # python -m endure.bench cluster-log, cluster: JetStream R3 appends; e2e, failover on NATS
    "apply_bench",  # python -m endure.bench apply: partition state machine apply and replay speed
    "e2e_bench",  # python -m endure.bench e2e (and sleep, fanout, object-contention, tool)
    "cpu_bench",  # python -m endure.bench cpu: µs of CPU per invocation in each part (cProfile)
    "fairness_bench",  # python -m endure.bench fairness: a flooding tenant vs a quiet one
    "recovery_bench",  # python -m endure.bench recovery: resume time after kill -9
    "snapshot_bench",  # python -m endure.bench snapshot: a new leader's catch-up, full replay vs snapshot + tail
    "stream_bench",  # python -m endure.bench stream: live streams' chunks/s, latency, 100 streams, CPU overhead
    "sandbox_bench",  # python -m endure.bench sandbox: Wasmtime guests' compile, start and run latency
    "replay_bench",  # python -m endure.bench replay: offline Replayer speed and `endure deployments check` end to end
    "console_bench",  # python -m endure.bench console: the web console's invocations page on 100,000 invocations
    "compare.compare_bench",  # python -m endure.bench compare: Endure vs Restate, Temporal, DBOS side by side
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m endure.bench", description="Endure benchmarks.")
    sub = parser.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    for name in WORKLOADS:
        importlib.import_module(f"endure.bench.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
