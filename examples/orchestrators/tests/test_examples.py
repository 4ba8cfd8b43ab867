"""The orchestrator examples, run against the fake run API (clients/python/tests/fake_api.py).

Airflow, Prefect and Mage run with small stand-ins for their decorators (their packages take minutes
to install: see the README); Dagster, when it is installed, runs for real (``dagster.materialize``).
Each test executes the example's code path that calls the client: the run succeeds, or fails loudly.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys
import tempfile
import types
import unittest
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional
from unittest import mock

EXAMPLES = Path(__file__).resolve().parent.parent
REPO = EXAMPLES.parent.parent
sys.path[:0] = [str(REPO / "clients" / "python"), str(REPO / "clients" / "python" / "tests")]

from fake_api import TOKEN, FakeApi  # noqa: E402
from syncline_client import SyncFailed  # noqa: E402

COUNTS = {"queried": 120, "added": 3, "changed": 2, "removed": 1, "delivered": 6, "failed": 0, "skipped": 0}
SUCCEEDS = [{"phase": "Running", "startedAt": "2026-01-01T06:00:05Z"}, {"phase": "Succeeded", "counts": COUNTS}]
FAILS = [
    {"phase": "Running"},
    {"phase": "Failed", "reason": "SafetyRailTripped", "message": "the run would remove 90% of the contacts"},
]
PARTIAL = [{"phase": "PartiallySucceeded", "reason": "RowsRejected", "message": "2 of 6 rows rejected"}]

try:
    import dagster  # noqa: F401

    HAS_DAGSTER = True
except ImportError:
    HAS_DAGSTER = False


@contextmanager
def modules(**stubs: types.ModuleType) -> Iterator[None]:
    """Stand-in modules, by dotted name (airflow__sdk is airflow.sdk), for the time of a test."""
    names = {name.replace("__", "."): module for name, module in stubs.items()}
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(names)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def module(name: str, **attributes: Any) -> types.ModuleType:
    created = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(created, key, value)
    return created


def decorator(record: Optional[Dict[str, Dict[str, Any]]] = None) -> Callable[..., Any]:
    """A decorator usable bare or with options (``@task``, ``@task(retries=1)``) that changes nothing."""

    def decorate(fn: Optional[Callable[..., Any]] = None, **options: Any) -> Any:
        def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
            if record is not None:
                record[f.__name__] = options
            return f

        return wrap(fn) if fn is not None else wrap

    return decorate


class ExampleTest(unittest.TestCase):
    def setUp(self) -> None:
        self.api = FakeApi().__enter__()
        self.addCleanup(self.api.__exit__)
        self.api.syncs.add("customers-to-hubspot")
        self.api.plan = SUCCEEDS
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        token_file = Path(folder.name) / "token"
        token_file.write_text(TOKEN)
        environment = {
            "SYNCLINE_API_URL": self.api.url,
            "SYNCLINE_TOKEN_FILE": str(token_file),
            "SYNCLINE_NAMESPACE": "team-a",
        }
        patcher = mock.patch.dict(os.environ, environment)
        patcher.start()
        self.addCleanup(patcher.stop)

    def posts(self) -> List[Dict[str, Any]]:
        return [r for r in self.api.requests if r["method"] == "POST"]

    def assert_requested(self, sync: str = "customers-to-hubspot") -> None:
        posts = self.posts()
        self.assertEqual(len(posts), 1)
        self.assertEqual(posts[0]["path"], f"/api/v1/namespaces/team-a/syncs/{sync}/runs")
        self.assertEqual(posts[0]["headers"]["authorization"], f"Bearer {TOKEN}")
        self.assertTrue(posts[0]["headers"]["idempotency-key"].startswith("syncline-client-"))


class AirflowNode:
    """A task in the DAG: ``>>`` records the order, ``run()`` runs a @task's function as a worker would."""

    def __init__(self, task_id: str, run: Optional[Callable[[], Any]] = None, **options: Any) -> None:
        self.task_id = task_id
        self.options = options
        self.downstream: List[AirflowNode] = []
        self._run = run

    def __rshift__(self, other: AirflowNode) -> AirflowNode:
        self.downstream.append(other)
        return other

    def run(self) -> Any:
        assert self._run is not None, f"{self.task_id} is not a @task"
        return self._run()


class AirflowTest(ExampleTest):
    def load(self) -> List[AirflowNode]:
        nodes: List[AirflowNode] = []

        def bash_operator(task_id: str, bash_command: str, **options: Any) -> AirflowNode:
            node = AirflowNode(task_id, bash_command=bash_command, **options)
            nodes.append(node)
            return node

        def task(fn: Optional[Callable[..., Any]] = None, **options: Any) -> Any:
            def wrap(f: Callable[..., Any]) -> Callable[..., AirflowNode]:
                def call(*args: Any, **kwargs: Any) -> AirflowNode:
                    node = AirflowNode(f.__name__, lambda: f(*args, **kwargs), **options)
                    nodes.append(node)
                    return node

                return call

            return wrap(fn) if fn is not None else wrap

        self.dags: Dict[str, Dict[str, Any]] = {}
        with modules(
            airflow=module("airflow"),
            airflow__sdk=module("airflow.sdk", dag=decorator(self.dags), task=task),
            airflow__providers=module("airflow.providers"),
            airflow__providers__standard=module("airflow.providers.standard"),
            airflow__providers__standard__operators=module("airflow.providers.standard.operators"),
            airflow__providers__standard__operators__bash=module(
                "airflow.providers.standard.operators.bash", BashOperator=bash_operator
            ),
        ):
            runpy.run_path(str(EXAMPLES / "airflow" / "syncline_dag.py"))
        return nodes

    def test_the_dag_syncs_after_dbt_and_returns_the_run(self) -> None:
        dbt_build, sync = self.load()
        self.assertEqual((dbt_build.task_id, sync.task_id), ("dbt_build", "syncline_sync"))
        self.assertEqual(dbt_build.downstream, [sync])
        self.assertIn("schedule", self.dags["customers_to_hubspot"])
        self.assertEqual(self.posts(), [])  # parsing the DAG file calls nothing
        self.assertEqual(
            sync.run(), {"run": "customers-to-hubspot-m-0001", "phase": "Succeeded", "delivered": 6, "failed": 0}
        )
        self.assert_requested()

    def test_a_failed_run_fails_the_task_with_its_reason(self) -> None:
        self.api.plan = FAILS
        _, sync = self.load()
        with self.assertRaises(SyncFailed) as caught:
            sync.run()
        self.assertIn("Failed (SafetyRailTripped): the run would remove 90% of the contacts", str(caught.exception))


class PrefectTest(ExampleTest):
    def load(self) -> Dict[str, Any]:
        self.tasks: Dict[str, Dict[str, Any]] = {}
        prefect = module(
            "prefect",
            flow=decorator(),
            task=decorator(self.tasks),
            get_run_logger=lambda: logging.getLogger("prefect-example"),
        )
        with modules(prefect=prefect):
            return runpy.run_path(str(EXAMPLES / "prefect" / "syncline_flow.py"))

    def test_the_flow_builds_dbt_then_runs_the_sync(self) -> None:
        flow = self.load()
        calls: List[Any] = []

        def fake_run(args: List[str], check: bool) -> None:
            calls.append((args, len(self.posts())))

        with mock.patch("subprocess.run", fake_run):
            result = flow["customers_to_hubspot"](namespace="team-a")
        self.assertEqual(calls, [(["dbt", "build", "--select", "customers", "--project-dir", "/opt/dbt"], 0)])
        self.assertEqual(result, [{"run": "customers-to-hubspot-m-0001", "phase": "Succeeded", "delivered": 6}])
        self.assert_requested()
        self.assertEqual(self.tasks["syncline_sync"]["retries"], 1)

    def test_rejected_rows_fail_the_task(self) -> None:
        self.api.plan = PARTIAL
        flow = self.load()
        with self.assertRaises(SyncFailed) as caught:
            flow["customers_to_hubspot"](namespace="team-a", dbt_project_dir=None)
        self.assertEqual(caught.exception.run.reason, "RowsRejected")


class MageTest(ExampleTest):
    def load(self) -> Dict[str, Any]:
        # Mage puts its decorators in the block's globals; the block imports them only outside Mage.
        identity = decorator()
        return runpy.run_path(
            str(EXAMPLES / "mage" / "custom" / "syncline_sync.py"), init_globals={"custom": identity, "test": identity}
        )

    def test_the_block_runs_the_sync_and_its_test_passes(self) -> None:
        block = self.load()
        output = block["run_syncline_sync"](syncline_namespace="team-a")
        self.assertEqual(output, {"run": "customers-to-hubspot-m-0001", "phase": "Succeeded", "delivered": 6, "failed": 0})
        block["test_output"](output)
        self.assert_requested()

    def test_the_block_asks_for_a_full_resync_when_told(self) -> None:
        self.api.syncs.add("deals-to-hubspot")
        block = self.load()
        output = block["run_syncline_sync"](
            syncline_namespace="team-a", syncline_sync="deals-to-hubspot", syncline_full_resync=True
        )
        self.assertEqual(output["run"], "deals-to-hubspot-r-0001")
        self.assertEqual(self.posts()[0]["body"], b'{"fullResync": true}')

    def test_a_failed_run_fails_the_block(self) -> None:
        self.api.plan = FAILS
        block = self.load()
        with self.assertRaises(SyncFailed):
            block["run_syncline_sync"](syncline_namespace="team-a")


@unittest.skipUnless(HAS_DAGSTER, "dagster is not installed (examples/orchestrators/examples.test.ts installs it)")
class DagsterTest(ExampleTest):
    """The Dagster example with the real package: the asset materializes through the run API."""

    def load(self) -> Dict[str, Any]:
        import dagster as dg

        example = runpy.run_path(str(EXAMPLES / "dagster" / "syncline_assets.py"))
        dg.Definitions.validate_loadable(example["defs"])
        return example

    def materialize(self, example: Dict[str, Any]) -> Any:
        import dagster as dg

        syncline = example["defs"].resources["syncline"]
        self.assertEqual((syncline.base_url, syncline.namespace), (self.api.url, "team-a"))
        return dg.materialize(
            [example["hubspot_contacts"]],
            resources={"syncline": syncline},
            raise_on_error=False,
        )

    def test_the_asset_materializes_with_the_run_and_its_counts(self) -> None:
        result = self.materialize(self.load())
        self.assertTrue(result.success)
        [materialization] = result.asset_materializations_for_node("hubspot_contacts")
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        self.assertEqual(metadata, {"syncline_run": "customers-to-hubspot-m-0001", "delivered": 6, "changed": 6})
        self.assert_requested()

    def test_a_failed_run_fails_the_materialization_with_its_reason(self) -> None:
        self.api.plan = FAILS
        result = self.materialize(self.load())
        self.assertFalse(result.success)
        [failure] = [event for event in result.all_events if event.is_step_failure]
        user = failure.step_failure_data.user_failure_data
        self.assertIn("Failed (SafetyRailTripped)", user.description)
        self.assertEqual(user.metadata["reason"].value, "SafetyRailTripped")


if __name__ == "__main__":
    unittest.main()
