"""SQL is parameterised: values travel as `?`/`%s` parameters, never inside the SQL text.

An AST scan of every source file of the product (sql_audit.py says how) fails on any SQL built
by interpolation unless each interpolated expression is an identifier from code: a static
constant, or an entry of ALLOWED below with the reason it is one. Then hostile values (a ticker
and a headline made of quotes, semicolons and SQL) go through the real warehouse path (ingest
from a replay folder, the DuckDB IO manager, a downstream asset's load) and come back verbatim
with every table intact.
"""

import shutil
import textwrap
from pathlib import Path

import pandas as pd
from dagster import AssetIn, DagsterInstance, asset, materialize

from resources.providers.replay import BUNDLED_REPLAY_DIR
from resources.warehouse import warehouse_io_manager
from tests.graph.conftest import make_graph
from tests.security.sql_audit import Auditor
from trading_assets.assets.ingest import MINUTES
from trading_assets.partitions import key_minute

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("trading_assets", "resources", "sensors", "jobs", "benchmarks", "scripts")
# Interpolated expressions that are identifiers from code, never data: (file, expression): why.
ALLOWED = {
    ("resources/warehouse.py", "table_slice.schema"): "Dagster's TableSlice schema: the IO "
    "manager's own `schema` (SCHEMA = 'trading'), set in code",
    ("resources/warehouse.py", "table_slice.table"): "Dagster's TableSlice table: the asset "
    "key's name, an identifier defined in code (Dagster only allows [A-Za-z0-9_] there)",
    ("trading_assets/checks/ingest.py", "table"): "load_rows(table): every caller passes a "
    "literal asset name or the asset_name of a check built in code",
    ("trading_assets/checks/agents.py", "table"): "_read(table): called with the literal "
    "'debate_triggers'",
    ("resources/paper_broker/state.py", "', '.join(order)"): "column names: the keys of the "
    "order dict the engine builds in code; the values go through ? marks",
    ("resources/paper_broker/state.py", "', '.join((f'{name} = ?' for name in fields))"): (
        "column names: update_order's keyword arguments, written in the engine's code; each "
        "value is a ? mark"
    ),
}
HOSTILE_TICKER = "AAPL'; DROP TABLE trading.bars; --"
HOSTILE_HEADLINE = (
    "Apple's \"AI\" bet; analysts say '; DELETE FROM trading.news; -- it's 100% \\ safe?"
)


def sources() -> list[Path]:
    return [p for d in PACKAGES if (REPO / d).is_dir() for p in sorted((REPO / d).rglob("*.py"))]


def test_every_sql_statement_in_the_product_takes_values_as_parameters() -> None:
    auditor = Auditor(REPO, sources(), ALLOWED)
    findings = auditor.findings()
    assert len(auditor.sites) >= 50, "the scan must see the SQL call sites"
    assert not findings, "SQL built from values (use ? parameters):\n" + "\n".join(
        map(str, findings)
    )
    assert auditor.used == set(ALLOWED), "stale allow-list entries: " + str(
        set(ALLOWED) - auditor.used
    )


def test_the_audit_flags_each_way_of_interpolating_a_value(tmp_path: Path) -> None:
    """The scanner itself, on code written the wrong and the right ways."""
    module = tmp_path / "pkg" / "bad.py"
    module.parent.mkdir()
    module.write_text(
        textwrap.dedent(
            """\
            SCHEMA = "trading"
            TABLE = f"{SCHEMA}.bars"
            TABLES = ("bars", "news")

            def run(conn, ticker, sql):
                conn.execute(f"SELECT * FROM bars WHERE ticker = '{ticker}'")
                conn.execute("SELECT * FROM bars WHERE ticker = '%s'" % ticker)
                conn.execute("SELECT * FROM bars WHERE ticker = '{}'".format(ticker))
                conn.execute("SELECT * FROM bars WHERE ticker = '" + ticker + "'")
                query = f"DELETE FROM news WHERE id = {ticker}"
                conn.execute(query)
                helper(conn, f"SELECT {ticker}")
                conn.execute(f"SELECT * FROM {TABLE} WHERE ticker = ?", [ticker])
                marks = ", ".join("?" for _ in ticker)
                conn.execute(f"SELECT * FROM {SCHEMA}.news WHERE ticker IN ({marks})", ticker)
                for table in TABLES:
                    conn.execute(f"SELECT count(*) FROM {SCHEMA}.{table}")
                conn.execute(sql)

            def helper(conn, statement):
                return conn.execute(statement).fetchall()
            """
        )
    )
    auditor = Auditor(tmp_path, [module], {})
    flagged = sorted({f.line for f in auditor.findings()})
    assert flagged == [6, 7, 8, 9, 11, 12]
    assert "pkg/bad.py:6: f-string: 'ticker' goes into SQL" in str(auditor.findings()[0])


# --- behaviour: hostile values through the real warehouse path ------------------------------------


def test_a_hostile_headline_is_stored_verbatim_and_the_tables_survive(tmp_path: Path) -> None:
    replay = tmp_path / "replay"
    shutil.copytree(BUNDLED_REPLAY_DIR, replay)
    news_csv = next((replay / "news").glob("*.csv"))
    news = pd.read_csv(news_csv)
    row = {c: "" for c in news.columns}
    row.update({"published_utc": "2026-03-23T13:33:20Z", "ticker": "AAPL",
                "source": "wire'; DROP TABLE trading.bars; --", "headline": HOSTILE_HEADLINE,
                "url": "https://example.invalid/?q=';--"})  # fmt: skip
    pd.concat([news, pd.DataFrame([row])]).to_csv(news_csv, index=False)
    graph = make_graph(tmp_path / "g", replay_dir=replay)
    first, last = "2026-03-23|09:30", "2026-03-23|09:39"
    with DagsterInstance.ephemeral() as instance:
        assert graph.run(instance, first, last).success
        bars = graph.query("SELECT count(*) AS n FROM trading.bars")["n"][0]
        assert graph.run(instance, first, last).success  # the range's rows replaced, not lost
    stored = graph.query(
        "SELECT headline, source, url FROM trading.news WHERE url LIKE ?", ["%q=%"]
    )
    assert stored.to_dict("records") == [
        {"headline": HOSTILE_HEADLINE, "source": row["source"], "url": row["url"]}
    ]
    assert graph.query("SELECT count(*) AS n FROM trading.bars")["n"][0] == bars > 0
    assert graph.query("SELECT count(*) AS n FROM trading.news")["n"][0] > 1


@asset(partitions_def=MINUTES, metadata={"partition_expr": "minute"})
def hostile_rows(context) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    minute = key_minute(context.partition_key)  # naive New York, as the warehouse stores it
    return pd.DataFrame(
        {"minute": [minute, minute], "ticker": [HOSTILE_TICKER, "MSFT"],
         "headline": [HOSTILE_HEADLINE, "plain"]}
    )  # fmt: skip


@asset(
    partitions_def=MINUTES,
    ins={"rows": AssetIn("hostile_rows")},
    metadata={"partition_expr": "minute"},
)
def hostile_echo(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(echoed=rows["ticker"] + " | " + rows["headline"])


def test_a_hostile_ticker_round_trips_through_the_io_manager(tmp_path: Path) -> None:
    partition = "2026-03-23|09:31"
    warehouse = tmp_path / "warehouse.duckdb"
    graph = make_graph(tmp_path)
    with DagsterInstance.ephemeral() as instance:
        assert graph.run(instance, partition).success  # trading.bars etc. exist
        bars = graph.query("SELECT count(*) AS n FROM trading.bars")["n"][0]
        resources = {"io_manager": warehouse_io_manager(warehouse)}
        for _ in range(2):  # the second run deletes the partition's rows and writes them again
            result = materialize(
                [hostile_rows, hostile_echo],
                partition_key=partition,
                resources=resources,
                instance=instance,
            )
            assert result.success
    rows = graph.query("SELECT ticker, headline, echoed FROM trading.hostile_echo ORDER BY ticker")
    assert rows["ticker"].tolist() == [HOSTILE_TICKER, "MSFT"]
    assert rows["headline"].tolist() == [HOSTILE_HEADLINE, "plain"]
    assert rows["echoed"].iloc[0] == f"{HOSTILE_TICKER} | {HOSTILE_HEADLINE}"
    assert graph.query("SELECT count(*) AS n FROM trading.hostile_rows")["n"][0] == 2
    assert graph.query("SELECT count(*) AS n FROM trading.bars")["n"][0] == bars > 0
