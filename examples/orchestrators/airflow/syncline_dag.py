"""Airflow: build the dbt models, then sync them to HubSpot with Syncline.

The Syncline task fails (and the DAG run with it) when the run fails or rows are rejected; its log
and XCom say which run, why, and how many rows went out. Airflow 3 (for Airflow 2, import ``dag`` and
``task`` from ``airflow.decorators`` and BashOperator from ``airflow.operators.bash``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any, Dict

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag, task
from syncline_client import SynclineClient

NAMESPACE = os.environ.get("SYNCLINE_NAMESPACE", "data-team")


def syncline() -> SynclineClient:
    """The operator's run API, with the worker pod's service-account token (see the README)."""
    return SynclineClient(
        os.environ.get("SYNCLINE_API_URL", "https://syncline-api.syncline-system.svc"),
        token_file=os.environ.get("SYNCLINE_TOKEN_FILE"),  # None: the pod's own token, re-read per request
        ca_file=os.environ.get("SYNCLINE_CA_FILE", "/etc/syncline/ca.crt"),
    )


@dag(schedule="0 6 * * *", start_date=datetime(2026, 1, 1), catchup=False, tags=["dbt", "syncline"])
def customers_to_hubspot() -> None:
    dbt_build = BashOperator(
        task_id="dbt_build",
        bash_command="dbt build --select customers --project-dir /opt/dbt --profiles-dir /opt/dbt",
    )

    # One retry, for a run that failed for a transient reason; it requests a new run. The wait holds a
    # worker slot for as long as the run takes: give the task a pool if many Syncs run at once.
    @task(retries=1, retry_delay=timedelta(minutes=5), execution_timeout=timedelta(minutes=70))
    def syncline_sync(sync: str, full_resync: bool = False) -> Dict[str, Any]:
        run = syncline().run_and_wait(NAMESPACE, sync, full_resync=full_resync, timeout=3600)
        counts = run.counts
        print(f"Syncline run {run.id}: {run.phase}, {counts.delivered if counts else 0} rows delivered")
        return {
            "run": run.id,
            "phase": run.phase,
            "delivered": counts.delivered if counts else 0,
            "failed": counts.failed if counts else 0,
        }

    dbt_build >> syncline_sync("customers-to-hubspot")


customers_to_hubspot()
