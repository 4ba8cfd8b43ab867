"""Start and follow Syncline runs through the operator's run API (standard library only)."""

from .client import (
    DEFAULT_TOKEN_FILE,
    FINISHED_PHASES,
    MAX_WAIT_SECONDS,
    ApiError,
    Run,
    RunCounts,
    RunTimeout,
    SyncFailed,
    SynclineClient,
    SynclineClientError,
    TransportError,
)

__all__ = [
    "ApiError",
    "DEFAULT_TOKEN_FILE",
    "FINISHED_PHASES",
    "MAX_WAIT_SECONDS",
    "Run",
    "RunCounts",
    "RunTimeout",
    "SyncFailed",
    "SynclineClient",
    "SynclineClientError",
    "TransportError",
]
__version__ = "0.1.0"
