"""Asset jobs over the ingest layer."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from trading_assets.assets.ingest import MINUTES

ingest_job = define_asset_job(
    name="ingest_job",
    selection=AssetSelection.groups("ingest"),
    partitions_def=MINUTES,
    description="Bars, news and fundamentals for a range of session minutes, with their checks.",
)
