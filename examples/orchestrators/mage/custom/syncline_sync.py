"""Mage: a custom block that runs a Syncline Sync; put it after the dbt block of a pipeline.

The block fails (and the pipeline run with it) when the run fails or rows are rejected. Pipeline
variables ``syncline_namespace``, ``syncline_sync`` and ``syncline_full_resync`` choose the Sync.
"""

import os
from typing import Any, Dict

from syncline_client import SynclineClient

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@custom
def run_syncline_sync(*args: Any, **kwargs: Any) -> Dict[str, Any]:
    client = SynclineClient(
        os.environ.get("SYNCLINE_API_URL", "https://syncline-api.syncline-system.svc"),
        token_file=os.environ.get("SYNCLINE_TOKEN_FILE"),  # None: the pod's service-account token
        ca_file=os.environ.get("SYNCLINE_CA_FILE", "/etc/syncline/ca.crt"),
    )
    run = client.run_and_wait(
        kwargs.get("syncline_namespace", "data-team"),
        kwargs.get("syncline_sync", "customers-to-hubspot"),
        full_resync=bool(kwargs.get("syncline_full_resync", False)),
        timeout=3600,
    )
    counts = run.counts
    return {
        "run": run.id,
        "phase": run.phase,
        "delivered": counts.delivered if counts else 0,
        "failed": counts.failed if counts else 0,
    }


@test
def test_output(output: Dict[str, Any], *args: Any) -> None:
    assert output["phase"] == "Succeeded", f"Syncline run {output['run']} is {output['phase']}"
