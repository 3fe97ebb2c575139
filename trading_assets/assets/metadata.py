"""Where a step's materialization metadata goes: once per run, on its last partition.

Dagster copies a step's output metadata into the materialization event of every partition it
wrote, and serializes it two or three times per event. Over a backfill of 4,680 minutes that
copying was most of the run (BENCHMARKS, "Backfill throughput"). The figures describe the whole
run anyway, so they are attached once, to the newest partition's materialization: the one the
UI shows first. A live run's single partition carries them exactly as before.
"""

from collections.abc import Mapping

from dagster import AssetExecutionContext, AssetKey


def add_run_summary(
    context: AssetExecutionContext,
    metadata: Mapping[str, object],
    asset_key: AssetKey | str | None = None,
) -> None:
    """Attach `metadata` to the last partition this step materializes (or to its output when
    the asset is not partitioned)."""
    if not context.has_partition_key_range:
        if asset_key is None:
            context.add_output_metadata(dict(metadata))
        else:
            context.add_asset_metadata(dict(metadata), asset_key=asset_key)
        return
    context.add_asset_metadata(
        dict(metadata),
        asset_key=asset_key,
        partition_key=context.partition_keys[-1],  # a range may end on a non-session minute
    )
