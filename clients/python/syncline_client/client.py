"""A client of the Syncline operator's run API (``/api/v1``), standard library only.

The shapes follow ``crds/api.ts`` in the Syncline repository (runView, runList, apiError); the
server authenticates the bearer token with a TokenReview and asks a SubjectAccessReview for the
verb ``trigger`` on the Sync (POST) or ``get``/``list`` (GET).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

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

log = logging.getLogger("syncline_client")
log.addHandler(logging.NullHandler())

#: The in-pod service-account token; the kubelet rotates it, so it is read again for every request.
DEFAULT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
#: The longest ``wait`` the server holds a request open (crds/api.ts MAX_WAIT_SECONDS).
MAX_WAIT_SECONDS = 120
IDEMPOTENCY_KEY_MAX = 255
#: Phases after which a run changes no more (crds/api.ts FINISHED_PHASES).
FINISHED_PHASES = frozenset({"Succeeded", "PartiallySucceeded", "Failed", "Superseded"})
_RETRIED_STATUS = frozenset({429, 502, 503, 504})
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")
_VERSION = "0.1.0"


class SynclineClientError(Exception):
    """Every error this client raises."""


class ApiError(SynclineClientError):
    """An error answer of the run API: ``{"error": {"code", "reason", "message"}}``."""

    def __init__(
        self, code: int, reason: str, message: str, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        #: Seconds the server asked to wait (429 Retry-After), if it said.
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ApiError(code={self.code!r}, reason={self.reason!r}, message={self.message!r})"


class TransportError(SynclineClientError):
    """The API could not be reached (connection refused or reset, TLS, timeout), after the retries."""


@dataclass(frozen=True)
class RunCounts:
    queried: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunCounts:
        names = ("queried", "added", "changed", "removed", "delivered", "failed", "skipped")
        return cls(**{name: int(data.get(name, 0)) for name in names})


@dataclass(frozen=True)
class Run:
    """One run of a Sync (crds/api.ts runView). Times are RFC 3339 strings as the API sends them."""

    namespace: str
    sync: str
    id: str
    #: Pending, Running, Succeeded, PartiallySucceeded, Failed or Superseded.
    phase: str
    trigger: Optional[str] = None
    full_resync: Optional[bool] = None
    requested_at: Optional[str] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    #: CamelCase reason of a failure (docs/reasons.md in the Syncline repository).
    reason: Optional[str] = None
    message: Optional[str] = None
    counts: Optional[RunCounts] = None
    #: The run that covered a Superseded request (a full resync requested meanwhile).
    superseded_by: Optional[str] = None
    #: The answer as sent, with any field this version does not know.
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """The run will not change any more (a result, or Superseded)."""
        return self.phase in FINISHED_PHASES

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Run:
        counts = data.get("counts")
        return cls(
            namespace=str(data["namespace"]),
            sync=str(data["sync"]),
            id=str(data["id"]),
            phase=str(data["phase"]),
            trigger=data.get("trigger"),
            full_resync=data.get("fullResync"),
            requested_at=data.get("requestedAt"),
            started_at=data.get("startedAt"),
            finished_at=data.get("finishedAt"),
            reason=data.get("reason"),
            message=data.get("message"),
            counts=RunCounts.from_dict(counts) if isinstance(counts, Mapping) else None,
            superseded_by=data.get("supersededBy"),
            raw=dict(data),
        )


class SyncFailed(SynclineClientError):
    """A run ended Failed (or PartiallySucceeded, unless allowed); ``run`` is the run that decided."""

    def __init__(self, run: Run, requested: Optional[Run] = None) -> None:
        covered = f" (covering run {requested.id})" if requested and requested.id != run.id else ""
        reason = f" ({run.reason})" if run.reason else ""
        super().__init__(
            f"run {run.id} of {run.namespace}/{run.sync}{covered} {run.phase}{reason}: "
            f"{run.message or 'no message'}"
        )
        self.run = run
        #: The run that was requested, when another run (a full resync) covered it.
        self.requested = requested or run


class RunTimeout(SynclineClientError, TimeoutError):
    """The run did not finish in time; it goes on. ``run`` is how it was last seen."""

    def __init__(self, run: Run, timeout: float) -> None:
        super().__init__(
            f"run {run.id} of {run.namespace}/{run.sync} did not finish within {timeout:g}s "
            f"(still {run.phase}); it goes on"
        )
        self.run = run
        self.timeout = timeout


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The API never redirects; following one would send the token somewhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _tls_context(ca_file: Optional[str], verify: bool) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_file)


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _quote(segment: str) -> str:
    if not segment:
        raise ValueError("namespace, sync and run ID must not be empty")
    return urllib.parse.quote(segment, safe="")


class SynclineClient:
    """The run API of one Syncline installation.

    ``base_url`` is the API's address, e.g. ``https://syncline-api.syncline-system.svc`` in the
    cluster. The bearer token is ``token``, else read from ``token_file`` (default: the pod's
    service-account token) for every request, since the kubelet rotates it. ``ca_file`` is the CA
    that signed the API's certificate (the chart's ``<release>-api-tls`` Secret, key ``ca.crt``).

    GET requests, and POST requests with an Idempotency-Key, are retried with backoff on connection
    errors, 429 (after its Retry-After) and 502/503/504, up to ``max_retries`` times. The token is
    never part of an exception, a log line or the client's repr.
    """

    def __init__(
        self,
        base_url: str,
        token: Optional[str] = None,
        token_file: Optional[str] = None,
        ca_file: Optional[str] = None,
        verify: bool = True,
        timeout: float = 30.0,
        *,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if token is not None and token_file is not None:
            raise ValueError("pass token or token_file, not both")
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("https", "http") or not parsed.netloc:
            raise ValueError(f"base_url must be an https:// URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.token_file = None if token is not None else (token_file or DEFAULT_TOKEN_FILE)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock
        handlers: List[urllib.request.BaseHandler] = [_NoRedirect()]
        if parsed.scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=_tls_context(ca_file, verify)))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"SynclineClient(base_url={self.base_url!r})"

    # ── the API ──────────────────────────────────────────────────────────────────────────────────

    def trigger(
        self,
        namespace: str,
        sync: str,
        full_resync: bool = False,
        idempotency_key: Optional[str] = None,
    ) -> Run:
        """Requests a run (a full resync with ``full_resync``); returns it, usually Pending.

        A request while another is pending joins it (the same run). With ``idempotency_key`` the
        request is safe to retry: the same key names the same run, and this client retries it.
        """
        if idempotency_key is not None and not 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
            raise ValueError(f"idempotency_key must have 1 to {IDEMPOTENCY_KEY_MAX} characters")
        _, _, body = self._request(
            "POST",
            self._runs_path(namespace, sync),
            body={"fullResync": full_resync},
            idempotency_key=idempotency_key,
        )
        return Run.from_dict(body)

    def get_run(
        self, namespace: str, sync: str, run_id: str, wait: Optional[float] = None
    ) -> Run:
        """One run. With ``wait`` (seconds, at most 120), the server answers once the run has
        finished or the wait is over, whichever comes first."""
        query: Dict[str, str] = {}
        seconds = 0
        if wait is not None and wait > 0:
            seconds = int(math.ceil(min(wait, MAX_WAIT_SECONDS)))
            query["wait"] = str(seconds)
        path = f"{self._runs_path(namespace, sync)}/{_quote(run_id)}"
        _, _, body = self._request("GET", path, query=query, wait=seconds)
        return Run.from_dict(body)

    def list_runs(self, namespace: str, sync: str) -> List[Run]:
        """The runs of a Sync: pending and active first, then newest first."""
        _, _, body = self._request("GET", self._runs_path(namespace, sync))
        return [Run.from_dict(item) for item in body.get("items", [])]

    def wait_for_run(
        self, namespace: str, sync: str, run_id: str, timeout: float, poll_wait: float = 60.0
    ) -> Run:
        """Long-polls a run until it finished (a result, or Superseded); raises RunTimeout after
        ``timeout`` seconds (the run goes on)."""
        deadline = self._clock() + timeout
        while True:
            wait = int(round(min(poll_wait, MAX_WAIT_SECONDS, deadline - self._clock())))
            asked = self._clock()
            run = self.get_run(namespace, sync, run_id, wait=wait if wait >= 1 else None)
            if run.finished:
                return run
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise RunTimeout(run, timeout)
            if self._clock() - asked < 1.0:
                # Answered at once (a server or proxy that does not hold the request): poll gently.
                self._sleep(min(2.0, remaining))

    def run_and_wait(
        self,
        namespace: str,
        sync: str,
        full_resync: bool = False,
        timeout: float = 3600.0,
        allow_partial: bool = False,
        idempotency_key: Optional[str] = None,
        poll_wait: float = 60.0,
    ) -> Run:
        """Triggers a run and waits for it; returns the finished run.

        The request carries an Idempotency-Key (``idempotency_key``, else a new one), reused on each
        retry, so a retried request never starts a second run. A run superseded by a full resync
        requested meanwhile ends with that run's result. Raises SyncFailed when the run Failed, or
        PartiallySucceeded (some rows rejected) unless ``allow_partial``; RunTimeout after ``timeout``.
        """
        deadline = self._clock() + timeout
        key = idempotency_key or f"syncline-client-{uuid.uuid4()}"
        requested = self.trigger(namespace, sync, full_resync=full_resync, idempotency_key=key)
        log.info("requested run %s of %s/%s (%s)", requested.id, namespace, sync, requested.phase)
        try:
            run = self._follow(requested, deadline, poll_wait)
        except RunTimeout as error:
            raise RunTimeout(error.run, timeout) from None
        if run.succeeded or (allow_partial and run.phase == "PartiallySucceeded"):
            return run
        raise SyncFailed(run, requested)

    # ── plumbing ─────────────────────────────────────────────────────────────────────────────────

    def _follow(self, requested: Run, deadline: float, poll_wait: float) -> Run:
        """Waits for a run, and for the run that covered it when it was superseded."""
        current = requested.id
        for _ in range(10):
            remaining = max(0.0, deadline - self._clock())
            run = self.wait_for_run(requested.namespace, requested.sync, current, remaining, poll_wait)
            while run.phase == "Superseded" and not run.superseded_by:
                # The covering run is not in the Sync's status yet: look again shortly.
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise RunTimeout(run, 0)
                self._sleep(min(2.0, remaining))
                run = self.get_run(requested.namespace, requested.sync, current)
            if run.phase != "Superseded" or run.superseded_by is None:
                return run
            log.info("run %s was superseded by run %s", current, run.superseded_by)
            current = run.superseded_by
        raise SynclineClientError(f"run {requested.id} was superseded too many times")

    def _runs_path(self, namespace: str, sync: str) -> str:
        return f"/api/v1/namespaces/{_quote(namespace)}/syncs/{_quote(sync)}/runs"

    def _bearer(self) -> str:
        token = self._token
        where = "token"
        if token is None:
            where = f"token file {self.token_file}"
            try:
                with open(str(self.token_file), encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as error:
                raise SynclineClientError(
                    f"cannot read the bearer token from {self.token_file}: {error.strerror}; pass "
                    "token= or token_file=, or run in a pod with a service-account token"
                ) from None
        if not token or not _TOKEN_CHARS.match(token):
            raise SynclineClientError(f"the bearer token ({where}) is empty or not one line of text")
        return token

    def _request(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, str]] = None,
        body: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
        wait: int = 0,
    ) -> Tuple[int, Mapping[str, str], Any]:
        """One API call, retried when that is safe: GET, or POST with an Idempotency-Key."""
        retryable = method == "GET" or idempotency_key is not None
        attempt = 0
        while True:
            try:
                return self._send(method, path, query, body, idempotency_key, wait)
            except ApiError as error:
                if not retryable or error.code not in _RETRIED_STATUS or attempt >= self.max_retries:
                    raise
                delay = self._delay(attempt, error.retry_after)
                problem = str(error)
            except TransportError as error:
                if not retryable or attempt >= self.max_retries:
                    raise
                delay = self._delay(attempt, None)
                problem = str(error)
            attempt += 1
            log.warning("%s (retry %d of %d in %.1fs)", problem, attempt, self.max_retries, delay)
            self._sleep(delay)

    def _delay(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_backoff, self.backoff * (2.0**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _send(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, str]],
        body: Optional[Mapping[str, Any]],
        idempotency_key: Optional[str],
        wait: int,
    ) -> Tuple[int, Mapping[str, str], Any]:
        url = f"{self.base_url}{path}"
        if query:
            url = f"{url}?{urllib.parse.urlencode(query)}"
        token = self._bearer()
        headers = {
            "Accept": "application/json",
            "User-Agent": f"syncline-client-python/{_VERSION}",
            "Authorization": f"Bearer {token}",
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout + wait) as response:
                status, answer, text = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            text = error.read() if error.fp is not None else b""
            raise _api_error(error.code, error.headers, text, token) from None
        except (urllib.error.URLError, HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise TransportError(f"{method} {url}: {_scrub(str(reason), token)}") from None
        try:
            return status, answer, json.loads(text.decode("utf-8"))
        except ValueError:
            raise SynclineClientError(f"{method} {url}: the answer is not JSON (HTTP {status})") from None


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "[token]") if token else text


def _api_error(code: int, headers: Any, text: bytes, token: str) -> ApiError:
    """The error of an answer: the contract's error body, or what a proxy said."""
    retry_after = _retry_after(headers.get("Retry-After") if headers is not None else None)
    try:
        error = json.loads(text.decode("utf-8"))["error"]
        return ApiError(
            int(error["code"]),
            str(error["reason"]),
            _scrub(str(error["message"]), token),
            retry_after,
        )
    except (ValueError, KeyError, TypeError):
        snippet = _scrub(text.decode("utf-8", "replace").strip()[:300], token)
        return ApiError(code, f"HTTP{code}", snippet or "no message", retry_after)
