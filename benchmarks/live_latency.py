"""Live latency: a minute's close -> its order at the broker, through the real daemon.

Replays a window of a bundled session on a throw-away SQLite instance, warehouse and paper
broker, with the real `dagster-daemon`: its scheduler ticks `intraday_schedule` every wall
minute, which reads the replayed market time from the paper broker's clock
(`TRADING_REPLAY_CLOCK=broker`); the replay runs that clock at real speed, one replayed minute
per wall minute, each minute closing exactly on a wall-minute boundary (= the cron tick). The
schedule's `intraday_job` run (ingest .. trade_signals), `trade_signal_sensor` and the
`execute_signals` run it launches are the daemon's. Research for the window is materialized
first (one run, in process): the history each minute reads. Every minute of the window is ticked
at real speed (`--skip-quiet` ticks only those with a debated BUY/SELL, jumping the clock over
the rest: quicker, but a run that outlives its wall minute then sees the market minutes ahead).

Stage times come from the instance's run records and event log (run created, RUN_STARTING,
RUN_START, each step, RUN_SUCCESS) and the order from the broker (`submitted_at` on its clock,
mapped back to wall time). Printed: p50 / p95 / max (nearest rank) over the minutes that sent
orders, each stage measured from the minute's close or as its own duration.

    .venv/bin/python benchmarks/live_latency.py [--from 09:30 --to 09:44] [--instance tuned]

`--instance defaults` runs on Dagster's default instance settings (no dagster.yaml: the
QueuedRunCoordinator, 5 s dequeue interval; default event writes); `tuned` (the default) uses
the run coordinator, scheduler and sensor sections of dagster.yaml.example on SQLite and the
shipped batched event writes (`trading_assets/event_writes.py`).
"""

import argparse
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def write_instance(home: Path, profile: str) -> str:
    """dagster.yaml for `profile`; returns a one-line description."""
    if profile == "defaults":
        return "Dagster defaults (no dagster.yaml): QueuedRunCoordinator, dequeue every 5 s"
    import yaml

    example = yaml.safe_load((REPO_ROOT / "dagster.yaml.example").read_text())
    example.pop("storage", None)  # SQLite in DAGSTER_HOME, as `make demo`
    (home / "dagster.yaml").write_text(yaml.safe_dump(example))
    return "dagster.yaml.example without storage: " + yaml.safe_dump(
        example, default_flow_style=True, width=10_000
    ).strip().replace("\n", " ")


def span(stamps: dict[str, float], a: str, b: str) -> float | None:
    return stamps[b] - stamps[a] if a in stamps and b in stamps else None


def stages(item) -> dict[str, float | None]:
    """Seconds per stage for one minute (None where a stamp is missing)."""
    run, ex = item.intraday, item.execute
    started = run.get("RUN_STARTING", run.get("RUN_DEQUEUED"))
    ex_started = ex.get("RUN_STARTING", ex.get("RUN_DEQUEUED"))
    order = min(item.orders) if item.orders else None
    return {
        "schedule tick: close -> intraday run created": (
            run["created"] - item.close if "created" in run else None
        ),
        "intraday run: created -> launched (queue)": (
            started - run["created"] if started and "created" in run else None
        ),
        "intraday run: launched -> started (process, code load)": (
            run["RUN_START"] - started if started and "RUN_START" in run else None
        ),
        "intraday run: started -> first step": span(run, "RUN_START", "first_step"),
        "intraday run: steps (first start -> last end)": span(run, "first_step", "last_step"),
        "intraday run: last step -> success": span(run, "last_step", "RUN_SUCCESS"),
        "sensor: intraday success -> execute run created": (
            ex["created"] - run["RUN_SUCCESS"] if "created" in ex and "RUN_SUCCESS" in run else None
        ),
        "execute run: created -> launched (queue)": (
            ex_started - ex["created"] if ex_started and "created" in ex else None
        ),
        "execute run: launched -> started (process, code load)": (
            ex["RUN_START"] - ex_started if ex_started and "RUN_START" in ex else None
        ),
        "execute run: started -> first order at the broker": (
            order - ex["RUN_START"] if order and "RUN_START" in ex else None
        ),
        "close -> intraday run success": (
            run["RUN_SUCCESS"] - item.close if "RUN_SUCCESS" in run else None
        ),
        "CLOSE -> ORDER at the broker (first order)": order - item.close if order else None,
    }


def print_figures(minutes: list) -> None:
    sent = [m for m in minutes if m.orders]
    print(f"\nminutes ticked {len(minutes)}, with orders at the broker {len(sent)}: "
          + ", ".join(f"{m.minute[-5:]} ({len(m.orders)})" for m in sent))  # fmt: skip
    for label, group in (("minutes that sent orders", sent), ("every ticked minute", minutes)):
        if not group:
            continue
        print(f"\nper stage over the {len(group)} {label} (s): p50 / p95 / max")
        table: dict[str, list[float]] = {}
        for item in group:
            for name, value in stages(item).items():
                if value is not None:
                    table.setdefault(name, []).append(value)
        for name, values in table.items():
            print(f"  {name:<56} {nearest_rank(values, 0.5):6.1f} / "
                  f"{nearest_rank(values, 0.95):6.1f} / {max(values):6.1f}")  # fmt: skip
    steps: dict[str, list[float]] = {}
    for item in minutes:
        for step, seconds in item.steps.items():
            steps.setdefault(step, []).append(seconds)
    if steps:
        total = sum(median(v) for v in steps.values())
        print(
            f"\nintraday_job steps, median over {len(minutes)} runs (sum {total:.1f} s; "
            "the steps run one after another, in process):"
        )
        for step, values in sorted(steps.items(), key=lambda kv: -median(kv[1]))[:12]:
            print(f"  {step:<56} {median(values):6.2f}")
    ex_steps: dict[str, list[float]] = {}
    for item in sent:
        for step, seconds in item.execute_steps.items():
            ex_steps.setdefault(step, []).append(seconds)
    for step, values in ex_steps.items():
        print(f"  execute_signals step {step:<35} {median(values):6.2f}")
    to_order = [min(m.orders) - m.close for m in sent]
    if to_order:
        print(f"\nCLOSE -> ORDER: p50 {nearest_rank(to_order, 0.5):.1f} s, "
              f"p95 {nearest_rank(to_order, 0.95):.1f} s over {len(to_order)} minutes "
              f"(each: {', '.join(f'{v:.1f}' for v in to_order)})")  # fmt: skip


def analyze(tmp: Path) -> list:
    """The minutes of a kept run (`--keep`) recomputed from its instance and paper broker: each
    minute closed on the wall minute its schedule tick created the run in."""
    os.environ["DAGSTER_HOME"] = str(tmp / "home")
    import pandas as pd
    from dagster import DagsterInstance, RunsFilter

    from resources.paper_broker import BrokerState
    from trading_assets.partitions import key_minute
    from trading_assets.replay import (
        Segment,
        assign_orders,
        collect_minutes,
        signal_orders,
        to_wall,
    )

    instance = DagsterInstance.get()
    records = instance.get_run_records(
        RunsFilter(job_name="intraday_job", tags={"trading/replay": "true"})
    )
    closes = dict(sorted(
        (r.dagster_run.tags["dagster/partition"], r.create_timestamp.timestamp() // 60 * 60)
        for r in records
    ))  # fmt: skip
    minutes = collect_minutes(instance, closes)
    segments = [Segment(key_minute(k), w) for k, w in closes.items()]
    books = BrokerState(
        tmp / "data" / "paper_broker.sqlite", initial_cash=100_000.0, start_time=pd.Timestamp(0)
    )  # an existing file: its own clock and cash
    try:
        stamps = signal_orders(books.orders())
    finally:
        books.close()
    assign_orders(minutes, [to_wall(segments, stamp) for stamp in stamps])
    return minutes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="2026-03-23")
    parser.add_argument("--from", dest="first", default="09:30")
    parser.add_argument("--to", dest="last", default="09:44")
    parser.add_argument("--skip-quiet", action="store_true", help="tick decided minutes only")
    parser.add_argument("--instance", choices=("tuned", "defaults"), default="tuned")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (instance, broker)")
    parser.add_argument("--analyze", type=Path, help="only print the figures of a kept temp dir")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stops the daemon and the broker
    if args.analyze:
        print_figures(analyze(args.analyze))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="live-latency-"))
    home = tmp / "home"
    home.mkdir()
    os.environ |= {
        "DAGSTER_HOME": str(home),
        "TRADING_DATA_DIR": str(tmp / "data"),
        "TRADING_REPLAY_CLOCK": "broker",
    }
    print(f"instance: {write_instance(home, args.instance)}")
    from trading_assets.event_writes import BATCHED_EVENT_WRITES, apply_event_writes

    for name in BATCHED_EVENT_WRITES:  # the daemon and its run workers inherit these
        os.environ.pop(name, None)
    if args.instance == "tuned":
        apply_event_writes()  # the shipped setting (the Makefile exports it)
    import pandas as pd

    from resources.paper_broker import BrokerState, PaperBroker
    from resources.warehouse import data_dir
    from trading_assets.partitions import session_bounds
    from trading_assets.replay import replay_schedule

    bounds = session_bounds(args.session)
    if bounds is None:
        raise SystemExit(f"{args.session} is not an NYSE session")
    opened = pd.Timestamp(bounds[0]).tz_localize("America/New_York").tz_convert("UTC")
    broker_db = data_dir() / "paper_broker.sqlite"
    broker_db.parent.mkdir(parents=True, exist_ok=True)
    broker = PaperBroker(broker_db, start_time=opened, initial_cash=100_000.0).start()
    os.environ |= {"TRADING_BROKER_MODE": "embedded", "TRADING_BROKER_URL": broker.url}
    started = time.perf_counter()
    try:
        minutes = replay_schedule(
            args.session,
            set_clock=broker.set_clock,
            orders=lambda: broker._require_engine().state.orders(),
            first=args.first,
            last=args.last,
            skip_quiet=args.skip_quiet,
        )
    finally:
        broker.stop()
    print(f"\n{args.session} {args.first}-{args.last} through the real daemon in "
          f"{time.perf_counter() - started:.0f} s (temp dir {tmp})")  # fmt: skip
    books = BrokerState(broker_db, initial_cash=100_000.0, start_time=opened)
    try:
        sent = [o for o in books.orders() if o["client_order_id"].startswith("sig-")]
        print(f"paper broker: {len(sent)} bracket orders")
    finally:
        books.close()
    print_figures(minutes)
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
