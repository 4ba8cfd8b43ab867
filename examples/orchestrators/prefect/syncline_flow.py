"""Prefect: a flow that builds the dbt models and then runs their Syncline Syncs, one task each.

A task fails (and the flow with it) when its run fails or rows are rejected; the exception names the
run, the reason and the message. ``python syncline_flow.py`` runs it once; deploy it as any flow.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, Dict, List, Optional

from prefect import flow, get_run_logger, task
from syncline_client import SynclineClient


def syncline() -> SynclineClient:
    return SynclineClient(
        os.environ.get("SYNCLINE_API_URL", "https://syncline-api.syncline-system.svc"),
        token_file=os.environ.get("SYNCLINE_TOKEN_FILE"),  # None: the pod's service-account token
        ca_file=os.environ.get("SYNCLINE_CA_FILE", "/etc/syncline/ca.crt"),
    )


@task
def dbt_build(project_dir: str, select: str) -> None:
    subprocess.run(["dbt", "build", "--select", select, "--project-dir", project_dir], check=True)


@task(retries=1, retry_delay_seconds=300, timeout_seconds=3900)
def syncline_sync(namespace: str, sync: str, full_resync: bool = False) -> Dict[str, Any]:
    run = syncline().run_and_wait(namespace, sync, full_resync=full_resync, timeout=3600)
    counts = run.counts
    get_run_logger().info(
        "Syncline run %s: %s, %s rows delivered", run.id, run.phase, counts.delivered if counts else 0
    )
    return {"run": run.id, "phase": run.phase, "delivered": counts.delivered if counts else 0}


@flow(name="customers-to-hubspot")
def customers_to_hubspot(
    namespace: str = "data-team",
    syncs: Optional[List[str]] = None,
    dbt_project_dir: Optional[str] = "/opt/dbt",
) -> List[Dict[str, Any]]:
    if dbt_project_dir:
        dbt_build(dbt_project_dir, "customers")
    return [syncline_sync(namespace, sync) for sync in syncs or ["customers-to-hubspot"]]


if __name__ == "__main__":
    customers_to_hubspot()
