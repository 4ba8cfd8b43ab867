"""Dagster: an asset for what a Syncline Sync delivers, downstream of the dbt model it reads.

Materializing ``hubspot_contacts`` requests a run of the Sync and waits for it: the materialization
records the run and its row counts, and fails (dagster.Failure, with the reason) when the run fails or
rows are rejected. With dagster-dbt, the dependency is the dbt model's own asset key.
"""

import os
from typing import Optional

import dagster as dg
from syncline_client import SyncFailed, SynclineClient


class SynclineResource(dg.ConfigurableResource):
    """The operator's run API; the token is the pod's service-account token unless token_file says."""

    base_url: str = "https://syncline-api.syncline-system.svc"
    ca_file: Optional[str] = "/etc/syncline/ca.crt"
    token_file: Optional[str] = None
    namespace: str = "data-team"

    def client(self) -> SynclineClient:
        return SynclineClient(self.base_url, token_file=self.token_file, ca_file=self.ca_file)


@dg.asset(deps=[dg.AssetKey("customers")], group_name="activation", kinds={"hubspot"})
def hubspot_contacts(context: dg.AssetExecutionContext, syncline: SynclineResource) -> dg.MaterializeResult:
    try:
        run = syncline.client().run_and_wait(syncline.namespace, "customers-to-hubspot", timeout=3600)
    except SyncFailed as failed:
        raise dg.Failure(
            description=str(failed),
            metadata={"syncline_run": failed.run.id, "reason": failed.run.reason or failed.run.phase},
        ) from failed
    context.log.info(f"Syncline run {run.id}: {run.phase}")
    counts = run.counts
    return dg.MaterializeResult(
        metadata={
            "syncline_run": run.id,
            "delivered": counts.delivered if counts else 0,
            "changed": (counts.added + counts.changed + counts.removed) if counts else 0,
        }
    )


defs = dg.Definitions(
    assets=[hubspot_contacts],
    resources={
        "syncline": SynclineResource(
            base_url=os.environ.get("SYNCLINE_API_URL", "https://syncline-api.syncline-system.svc"),
            ca_file=os.environ.get("SYNCLINE_CA_FILE", "/etc/syncline/ca.crt"),
            token_file=os.environ.get("SYNCLINE_TOKEN_FILE"),
            namespace=os.environ.get("SYNCLINE_NAMESPACE", "data-team"),
        )
    },
)
