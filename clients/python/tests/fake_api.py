"""A small stand-in for the operator's run API, in a thread, answering in the contract's shapes
(crds/api.ts: runView, runList, apiError; 202/200, Idempotent-Replayed, Location, Retry-After, wait)."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

TOKEN = "sekret-token-0123456789"
ACTIVE = ("Pending", "Running")
Answer = Tuple[int, Dict[str, str], Any]


def error_body(code: int, reason: str, message: str) -> Dict[str, Any]:
    return {"error": {"code": code, "reason": reason, "message": message}}


class FakeApi:
    """Runs of Syncs in namespace team-a; each run goes through the phases of its plan, one per GET."""

    def __init__(self, honor_wait: bool = True) -> None:
        self.honor_wait = honor_wait
        self.tokens = {TOKEN}
        self.syncs = {"contacts", "deals"}
        self.runs: Dict[str, Dict[str, Any]] = {}
        self.order: List[str] = []
        #: Phases (or whole run updates) each new run goes through, one per GET of it.
        self.plan: List[Dict[str, Any]] = [{"phase": "Running"}, {"phase": "Succeeded"}]
        self.keys: Dict[str, str] = {}
        #: Answers given before any other, one per request (429s, 503s, ...).
        self.script: List[Answer] = []
        self.requests: List[Dict[str, Any]] = []
        self.changed = threading.Condition()
        self._plans: Dict[str, List[Dict[str, Any]]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_run(self, sync: str, run_id: str, plan: Optional[List[Dict[str, Any]]] = None, **view: Any) -> None:
        with self.changed:
            self.runs[run_id] = {"namespace": "team-a", "sync": sync, "id": run_id, **view}
            self.order.insert(0, run_id)
            self._plans[run_id] = list(self.plan if plan is None else plan)

    def update_later(self, run_id: str, seconds: float, **update: Any) -> None:
        def apply() -> None:
            with self.changed:
                self.runs[run_id].update(update)
                self.changed.notify_all()

        threading.Timer(seconds, apply).start()

    # ── the routes ───────────────────────────────────────────────────────────────────────────────

    def answer(self, method: str, path: str, query: Dict[str, str], headers: Dict[str, str], body: bytes) -> Answer:
        self.requests.append({"method": method, "path": path, "query": query, "headers": headers, "body": body})
        if self.script:
            return self.script.pop(0)
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer ") :] not in self.tokens:
            return 401, {}, error_body(401, "Unauthenticated", "the API server does not accept this token")
        parts = path.strip("/").split("/")
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 6 or parts[4] != "syncs" or parts[6:7] != ["runs"]:
            return 404, {}, error_body(404, "RouteNotFound", f"no route {method} {path}")
        namespace, sync = parts[3], parts[5]
        if namespace != "team-a" or sync not in self.syncs:
            return 404, {}, error_body(404, "SyncNotFound", f"no Sync {sync} in namespace {namespace}")
        if method == "POST" and len(parts) == 7:
            return self.post(sync, headers, body)
        if method == "GET" and len(parts) == 7:
            return 200, {}, {"items": [self.runs[i] for i in self.order if self.runs[i]["sync"] == sync]}
        if method == "GET" and len(parts) == 8:
            return self.get(parts[7], query)
        return 404, {}, error_body(404, "RouteNotFound", f"no route {method} {path}")

    def post(self, sync: str, headers: Dict[str, str], body: bytes) -> Answer:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {}, error_body(400, "InvalidRequest", "the body is not JSON")
        resync = bool(request.get("fullResync", False))
        key = headers.get("idempotency-key")
        if key and key in self.keys:
            run = self.runs[self.keys[key]]
            if bool(run.get("fullResync")) != resync:
                return 422, {}, error_body(422, "IdempotencyKeyReused", "the Idempotency-Key was used for another request")
            return 200, {"Idempotent-Replayed": "true", "Location": self.location(run)}, run
        run_id = f"{sync}-{'r' if resync else 'm'}-{len(self.runs) + 1:04d}"
        self.add_run(sync, run_id, phase="Pending", trigger="api", fullResync=resync, requestedAt="2026-01-01T12:00:00Z")
        if key:
            self.keys[key] = run_id
        run = self.runs[run_id]
        return 202, {"Location": self.location(run)}, run

    def get(self, run_id: str, query: Dict[str, str]) -> Answer:
        """A run; with wait, held until it finished or the wait is over, its plan going on meanwhile
        (a step every 50 ms, as an operator would move it)."""
        with self.changed:
            run = self.runs.get(run_id)
            if run is None:
                return 404, {}, error_body(404, "RunNotFound", f"no run {run_id}")
            plan = self._plans.get(run_id, [])
            if plan:
                run.update(plan.pop(0))
            wait = min(float(query.get("wait", "0")), 120.0) if self.honor_wait else 0.0
            until = time.monotonic() + wait
            while run["phase"] in ACTIVE and time.monotonic() < until:
                self.changed.wait(min(0.05, until - time.monotonic()))
                if plan and run["phase"] in ACTIVE:
                    run.update(plan.pop(0))
            return 200, {}, dict(run)

    @staticmethod
    def location(run: Dict[str, Any]) -> str:
        return f"/api/v1/namespaces/{run['namespace']}/syncs/{run['sync']}/runs/{run['id']}"

    def _handler(self) -> type:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, payload = api.answer(self.command, url.path, query, headers, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve

        return Handler
