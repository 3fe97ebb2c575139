"""The team's job: ingest, the analysts and the debate for a range of session minutes."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from trading_assets.assets.ingest import MINUTES

research_job = define_asset_job(
    name="research_job",
    selection=AssetSelection.groups("ingest", "events", "analysts", "research"),
    partitions_def=MINUTES,
    description="Bars, news and fundamentals, the event gate, the four analysts, the bull and "
    "bear openings and the debate for a range of session minutes, with every check. A session "
    "is one run (every asset handles a partition range in one call).",
)
