"""Scale: one session of `backtest_job` for a growing universe, one run per size.

    .venv/bin/python benchmarks/scale.py                 # N = 9 (bundled), 25, 50, 100
    .venv/bin/python benchmarks/scale.py --quick         # N = 9, 25 over the first hour
    .venv/bin/python benchmarks/scale.py --sizes 9,100 --session 2026-03-24

For each N a throw-away replay folder holds the bundled data with the stocks' real bars
replicated under new symbols until the universe has N tickers (SPY and QQQ stay single: they
are the macro analyst's market, not traded). A replica is a real stock's bars, headlines,
sector, name/aliases and SEC fundamentals under a 5-letter symbol (AAPL -> AAPLA, AAPLB, ...;
the risk manager only accepts `[A-Z]{1,5}(.[A-Z])?`), so prices, gaps and news are real, just
repeated. Its fundamentals are the original's companyfacts JSON under a synthetic CIK (the
replay provider maps facts to tickers by CIK, one ticker per CIK).

Each N runs `backtest_job` (ingest .. trade_signals, backtest_fills; `rules` backend, every
check) over one session as one run on an ephemeral instance, in a fresh subprocess so peak
memory (ru_maxrss) is that run's. GX is imported before timing. Printed: wall time, seconds per
ticker-session, peak RSS, and each step's seconds (STEP_START .. STEP_SUCCESS from the run's
events), side by side.

Past one machine (see BENCHMARKS.md): one run is one process on about one core and holds its
whole partition range in memory (the backfill policy is single_run), and the warehouse is one
DuckDB file with one writer. The Dagster-native way out is more runs, not bigger ones: a
multi_run backfill policy (a run per session), a run launcher that gives each run its own pod
or container (K8sRunLauncher, CeleryK8sRunLauncher, DockerRunLauncher) behind the queued run
coordinator, and pools to cap the steps that share the warehouse or the model server; the
warehouse then has to take concurrent writers.
"""

import argparse
import json
import os
import resource
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' helpers and benchmarks.backtest_backfill

from resources.providers.replay import BUNDLED_REPLAY_DIR  # noqa: E402

SYNTHETIC_CIK = 9_000_000  # replicas' CIKs start here (no real filer this high is bundled)
SIZES = (9, 25, 50, 100)
QUICK_SIZES = (9, 25)


def replica_symbols(stocks: list[str], extra: int) -> list[tuple[str, str]]:
    """(original, replica) for `extra` replicas, round-robin over the stocks: AAPLA, MSFTA, ...,
    then AAPLB, ... (the bundled stocks are all 4 letters, so replicas are 5)."""
    if extra > len(stocks) * len(string.ascii_uppercase):
        raise SystemExit(f"at most {len(stocks) * 26} replicas of {len(stocks)} stocks")
    out = []
    for j in range(extra):
        base = stocks[j % len(stocks)]
        out.append((base, f"{base[:4]}{string.ascii_uppercase[j // len(stocks)]}"))
    return out


def build_replay(dest: Path, n_tickers: int, source: Path = BUNDLED_REPLAY_DIR) -> list[str]:
    """A replay folder in `dest` with `n_tickers` tickers (bundled ones + replicas); the tickers.

    Bars, news tags, universe rows and fundamentals are copied from the real stock each replica
    stands for; the ETFs are never replicated."""
    dest.mkdir(parents=True, exist_ok=True)
    universe = pd.read_csv(source / "universe.csv", dtype={"cik": "string"})
    etfs = universe.loc[universe["asset_type"].str.lower() == "etf", "ticker"].tolist()
    bars = pd.concat([pd.read_parquet(p) for p in sorted((source / "bars").glob("*.parquet"))])
    symbol = "symbol" if "symbol" in bars.columns else "ticker"
    have = sorted(bars[symbol].unique())
    stocks = [t for t in universe["ticker"] if t in have and t not in etfs]
    extra = n_tickers - len(have)
    if extra < 0:
        raise SystemExit(f"the bundled data already has {len(have)} tickers; ask for >= that")
    pairs = replica_symbols(stocks, extra)

    new_bars = [bars] + [bars[bars[symbol] == a].assign(**{symbol: r}) for a, r in pairs]
    (dest / "bars").mkdir(exist_ok=True)
    pd.concat(new_bars, ignore_index=True).to_parquet(dest / "bars" / "bars.parquet", index=False)

    (dest / "news").mkdir(exist_ok=True)
    for path in sorted((source / "news").glob("*.csv")):
        news = pd.read_csv(path)
        col = "ticker" if "ticker" in news.columns else "tickers"
        copies = [news] + [news[news[col] == a].assign(**{col: r}) for a, r in pairs]
        pd.concat(copies, ignore_index=True).to_csv(dest / "news" / path.name, index=False)

    (dest / "fundamentals").mkdir(exist_ok=True)
    docs = {}
    for path in sorted((source / "fundamentals").glob("*.json")):
        shutil.copy(path, dest / "fundamentals" / path.name)
        doc = json.loads(path.read_text())
        docs[str(doc["cik"])] = doc
    by_ticker = universe.set_index("ticker")
    rows = [universe]
    for k, (original, replica) in enumerate(pairs):
        row = by_ticker.loc[[original]].reset_index()
        row["ticker"] = replica
        row["name"] = f"{row['name'].iloc[0]} (replica {replica})"
        cik = row["cik"].iloc[0]
        if isinstance(cik, str) and cik.strip() and cik.strip() in docs:
            new_cik = SYNTHETIC_CIK + k
            doc = {**docs[cik.strip()], "cik": new_cik}
            (dest / "fundamentals" / f"CIK{new_cik:010d}.json").write_text(json.dumps(doc))
            row["cik"] = str(new_cik)
        else:
            row["cik"] = pd.NA  # a stock without bundled facts stays without
        rows.append(row)
    pd.concat(rows, ignore_index=True).to_csv(dest / "universe.csv", index=False)
    return sorted([*have, *(r for _, r in pairs)])


def child(replay_dir: str, first: str, last: str) -> dict:
    """One run in this process; what the parent prints, as a dict."""
    started = time.perf_counter()
    from dagster import DagsterInstance

    from benchmarks.backtest_backfill import step_seconds
    from tests.graph.conftest import make_graph
    from trading_assets.checks.expectations import _context

    _context()  # GX's import, before timing
    imports_s = time.perf_counter() - started
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp, DagsterInstance.ephemeral() as instance:
        graph = make_graph(Path(tmp), Path(replay_dir))
        started = time.perf_counter()
        result = graph.run(instance, first, last, job="backtest_job")
        wall = time.perf_counter() - started
        if not result.success:
            raise SystemExit("backtest_job failed")
        steps = step_seconds(instance, result.run_id)
        triggers = graph.query(
            "SELECT count(DISTINCT ticker) tickers, count(*) n, sum(triggered::INT) triggered, "
            "sum(debated::INT) debated FROM trading.debate_triggers"
        ).iloc[0]
        fills = int(graph.query("SELECT count(*) n FROM trading.backtest_fills")["n"].iloc[0])
        warehouse_mb = graph.warehouse.stat().st_size / 2**20
    return {
        "wall_s": wall,
        "imports_s": imports_s,
        "rss_before_mib": rss_before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "steps": steps,
        "stocks": int(triggers["tickers"]),
        "ticker_minutes": int(triggers["n"]),
        "triggered": int(triggers["triggered"]),
        "debated": int(triggers["debated"]),
        "fills": fills,
        "warehouse_mib": warehouse_mb,
    }


def run_size(n: int, replay_dir: Path, first: str, last: str) -> dict:
    cmd = [sys.executable, __file__, "--child", str(replay_dir), "--first", first, "--last", last]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ.copy())
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"N={n}: the run's subprocess failed ({done.returncode})")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - started
    return out


def report(results: dict[int, dict], minutes: int) -> None:
    sizes = sorted(results)
    width = 50
    head = "".join(f"{f'N={n}':>10}" for n in sizes)
    growth = len(sizes) > 1
    print(f"\n{'':<{width}}{head}" + (f"{'growth':>10}" if growth else ""))

    def line(label: str, values: list[str], tail: str = "") -> None:
        print(f"{label:<{width}}" + "".join(f"{v:>10}" for v in values) + tail)

    line("stocks analysed (+ SPY, QQQ)", [str(results[n]["stocks"]) for n in sizes])
    line("ticker-minutes", [f"{results[n]['ticker_minutes']:,}" for n in sizes])
    line(
        "triggered / debated", [f"{results[n]['triggered']}/{results[n]['debated']}" for n in sizes]
    )
    line("agent fills", [str(results[n]["fills"]) for n in sizes])
    line("wall time of the run, s", [f"{results[n]['wall_s']:.1f}" for n in sizes])
    line("s per ticker-session", [f"{results[n]['wall_s'] / n:.2f}" for n in sizes])
    base = sizes[0]

    def marginal(label: str, key: str, fmt: str) -> None:
        """Per added ticker against the smallest universe, when there is growth to show."""
        if growth:
            rest = [(results[n][key] - results[base][key]) / (n - base) for n in sizes[1:]]
            line(f"marginal {label} per added ticker vs N={base}", ["-", *map(fmt.format, rest)])

    marginal("s", "wall_s", "{:.2f}")
    line("peak RSS, MiB", [f"{results[n]['peak_rss_mib']:,.0f}" for n in sizes])
    line(
        "  of which before the run (imports)",
        [f"{results[n]['rss_before_mib']:,.0f}" for n in sizes],
    )
    marginal("MiB", "peak_rss_mib", "{:.1f}")
    line("warehouse file, MiB", [f"{results[n]['warehouse_mib']:.0f}" for n in sizes])
    line("process incl. imports, s", [f"{results[n]['process_s']:.0f}" for n in sizes])
    steps = sorted(
        {s for r in results.values() for s in r["steps"]},
        key=lambda s: -results[sizes[-1]]["steps"].get(s, 0.0),
    )
    ratio = sizes[-1] / sizes[0]
    print(
        f"\nstep seconds ({minutes} partitions, one run each; steps >= 0.5 s"
        + (f"; growth for x{ratio:.1f} tickers)" if growth else ")")
    )
    for step in steps:
        values = [results[n]["steps"].get(step, 0.0) for n in sizes]
        if max(values) < 0.5:
            continue
        tail = ""
        if growth:
            tail = f"{f'x{values[-1] / values[0]:.1f}' if values[0] else '-':>10}"
        line(f"  {step}", [f"{v:.1f}" for v in values], tail)
    debated = [results[n]["debated"] for n in sizes]
    if growth and debated[-1] == debated[-2]:
        print(
            "\nnote: replicas have their originals' bars, so they trigger in the same minutes and "
            "the gate's cap (3 debates a minute) binds in those minutes: debates stop growing "
            f"at {debated[-1]}. A real universe spreads triggers over more minutes (at most "
            f"3 x {minutes} debates), so the debate and decision steps are understated here."
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--session", default="2026-03-23", help="the session (default %(default)s)")
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="universe sizes incl. SPY and QQQ, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--window",
        default="09:30-15:59",
        help="first-last partition minute within the session (default the whole session)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="N = 9, 25 over 09:30-10:29 (about 3 minutes)"
    )
    parser.add_argument("--keep", type=Path, help="build the replay folders here and keep them")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one size here
    parser.add_argument("--first", help=argparse.SUPPRESS)
    parser.add_argument("--last", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.first, args.last)))
        return 0

    sizes = list(QUICK_SIZES) if args.quick else [int(s) for s in args.sizes.split(",")]
    window = "09:30-10:29" if args.quick else args.window
    lo, hi = window.split("-")
    first, last = f"{args.session}|{lo}", f"{args.session}|{hi}"
    minutes = len(pd.date_range(f"{args.session} {lo}", f"{args.session} {hi}", freq="min"))
    print(f"backtest_job {first} .. {last}, rules backend, one run per N in a fresh process")
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average), {os.cpu_count()} cores")
    root = args.keep or Path(tempfile.mkdtemp(prefix="scale-replay-"))
    results: dict[int, dict] = {}
    try:
        for n in sizes:
            replay = root / f"n{n}"
            tickers = build_replay(replay, n)
            results[n] = run_size(n, replay, first, last)
            r = results[n]
            print(
                f"  N={n:<4} {r['wall_s']:7.1f} s  ({r['wall_s'] / n:.2f} s per ticker-session), "
                f"peak RSS {r['peak_rss_mib']:,.0f} MiB, load {os.getloadavg()[0]:.2f}; "
                f"{', '.join(tickers[:3])} ... {tickers[-1]}",
                flush=True,
            )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report(results, minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
