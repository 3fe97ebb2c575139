"""Runs of this code location's jobs, recorded as the UI's, the scheduler's and the daemon's are.

`JobDefinition.execute_in_process` records a run without the code location's origin, and the
Dagster UI leaves such runs out of the Overview timeline (its rows are the code location's jobs,
and a run without an origin belongs to none; `useRunsForTimeline` skips it). The main command's
runs (the replay's research and decisions, the backtest) are created here with the origin, as
`dagster job launch` would, then executed in this process with the definitions the caller
built (no run worker to start): the UI shows them under their jobs like any other run.

The location is loaded in this process (`InProcessCodeLocationOrigin`) under the name the
webserver gives it (workspace.yaml's module), so the origin matches the UI's code location; it
supplies the jobs' snapshots (their structure), the caller's `Definitions` run them (their
resources, from the environment of the moment). `LocationRuns.from_workspace` loads the location
as the daemon does instead (workspace.yaml, a code server), for runs `submit`ted to the daemon's
queue (`load.py`). Dagster's workspace and run-creation APIs are internal and kept to this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, DagsterRunStatus, Definitions

MODULE = "trading_assets.definitions"  # workspace.yaml's module: the webserver's location name


class LocationRuns:
    """Create runs of the location's jobs on `instance` and execute them with `defs`, or submit
    them to the instance's run queue (a context manager)."""

    def __init__(
        self, instance: DagsterInstance, defs: Definitions | None, target: Any = None
    ) -> None:
        """`target`: a Dagster workspace load target; by default the module in this process."""
        from dagster._core.workspace.context import WorkspaceProcessContext

        self.instance, self.defs = instance, defs
        self._process = WorkspaceProcessContext(instance, target or _in_process(MODULE))
        self._jobs: dict[str, Any] = {}

    @classmethod
    def from_workspace(cls, instance: DagsterInstance, workspace_yaml: Path) -> LocationRuns:
        """The location as workspace.yaml loads it for the daemon (a code server it can launch
        runs from): for `submit`, not `run`."""
        from dagster._core.workspace.load_target import WorkspaceFileTarget

        return cls(instance, None, WorkspaceFileTarget(paths=[str(workspace_yaml)]))

    def __enter__(self) -> LocationRuns:
        self._process.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.__exit__(*exc)

    def prepare(self, job_name: str) -> None:
        """Load the job's snapshot and plan now (a round trip to a code server) rather than on
        the first run."""
        self._remote_job(job_name)

    def _remote_job(self, job_name: str) -> tuple[Any, Any, Any]:
        """(remote job, its execution plan snapshot, the repository's asset graph), cached."""
        from dagster._core.definitions.selector import JobSubsetSelector

        if job_name not in self._jobs:
            context = self._process.create_request_context()
            (location_name,) = context.code_location_names
            location = context.get_code_location(location_name)
            (repo_name,) = location.get_repositories()
            remote = location.get_job(
                JobSubsetSelector(
                    location_name=location_name,
                    repository_name=repo_name,
                    job_name=job_name,
                    op_selection=None,
                )
            )
            plan = location.get_execution_plan(
                remote, {}, step_keys_to_execute=None, known_state=None
            )
            graph = location.get_repository(repo_name).asset_graph
            self._jobs[job_name] = (remote, plan.execution_plan_snapshot, graph)
        return self._jobs[job_name]

    def create_run(
        self,
        job_name: str,
        tags: Mapping[str, str],
        run_config: Mapping[str, Any] | None = None,
        status: DagsterRunStatus | None = None,
    ):
        """A run of `job_name` with the location's origin (what the UI and the queue record)."""
        remote, plan, graph = self._remote_job(job_name)
        return self.instance.create_run(
            job_name=remote.name,
            run_id=None,
            run_config=dict(run_config or {}),
            resolved_op_selection=remote.resolved_op_selection,
            step_keys_to_execute=None,
            op_selection=remote.op_selection,
            status=status,
            root_run_id=None,
            parent_run_id=None,
            tags={**remote.run_tags, **tags},
            job_snapshot=remote.job_snapshot,
            execution_plan_snapshot=plan,
            parent_job_snapshot=remote.parent_job_snapshot,
            remote_job_origin=remote.get_remote_origin(),
            job_code_origin=remote.get_python_origin(),
            asset_selection=None,
            asset_check_selection=None,
            asset_graph=graph,
        )

    def run(
        self,
        job_name: str,
        tags: Mapping[str, str],
        run_config: Mapping[str, Any] | None = None,
    ):
        """Create the run (with its origin) and execute it here with `defs`' job, as a run
        worker would; the result has `success`, `run_id` and the run's events."""
        from dagster._core.definitions.job_base import InMemoryJob
        from dagster._core.execution.api import execute_run

        if self.defs is None:
            raise ValueError("LocationRuns.run needs the Definitions to execute with")
        run = self.create_run(job_name, tags, run_config)
        return execute_run(InMemoryJob(self.defs.resolve_job_def(job_name)), run, self.instance)

    def submit(
        self, job_name: str, tags: Mapping[str, str], run_config: Mapping[str, Any] | None = None
    ) -> str:
        """Create the run as the scheduler does and put it on the instance's run queue, for the
        daemon to launch; its run id."""
        run = self.create_run(job_name, tags, run_config, status=DagsterRunStatus.NOT_STARTED)
        self.instance.submit_run(run.run_id, self._process.create_request_context())
        return run.run_id


def _in_process(module: str) -> Any:
    """A load target for `module` in this process, under the name the webserver gives it."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    from resources.warehouse import REPO_ROOT

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=module, working_directory=str(REPO_ROOT)),
        location_name=module,
    )
    return InProcessWorkspaceLoadTarget([origin])
