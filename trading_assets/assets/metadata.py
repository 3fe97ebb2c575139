"""Where a step's materialization metadata goes: once per run, on its last materialization.

Dagster copies a step's output metadata into the materialization event of every partition it
wrote, and serializes it two or three times per event. Over a backfill of 4,680 minutes that
copying was most of the run (BENCHMARKS, "Backfill throughput"). The figures describe the whole
run anyway, so they are attached once, to the materialization Dagster writes last: the asset's
latest event, the one its page and the run's page show first. A live run's single partition
carries them exactly as before.
"""

from collections.abc import Mapping

from dagster import AssetExecutionContext, AssetKey


def last_written_key(context: AssetExecutionContext) -> str:
    """The partition whose materialization Dagster writes last in this step.

    Dagster writes a range's materializations in the order of the partition subset it builds
    from the run's key range; for two-dimensional keys that subset is a set, so the order is
    not the keys' order. The same public call builds the same set here, hence the same order
    (`tests/graph/test_research_job.py` reads the asset's latest event to hold this)."""
    partitions_def = context.assets_def.partitions_def
    assert partitions_def is not None
    subset = partitions_def.empty_subset().with_partition_key_range(
        partitions_def, context.partition_key_range
    )
    return list(subset.get_partition_keys())[-1]


def add_run_summary(
    context: AssetExecutionContext,
    metadata: Mapping[str, object],
    asset_key: AssetKey | str | None = None,
) -> None:
    """Attach `metadata` to the materialization this step writes last (or to its output when
    the asset is not partitioned)."""
    if not context.has_partition_key_range:
        if asset_key is None:
            context.add_output_metadata(dict(metadata))
        else:
            context.add_asset_metadata(dict(metadata), asset_key=asset_key)
        return
    context.add_asset_metadata(
        dict(metadata), asset_key=asset_key, partition_key=last_written_key(context)
    )
