"""syncline_client against a fake run API (tests/fake_api.py) answering in the contract's shapes."""

from __future__ import annotations

import ast
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import List, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from fake_api import TOKEN, FakeApi, error_body  # noqa: E402
from syncline_client import (  # noqa: E402
    DEFAULT_TOKEN_FILE,
    ApiError,
    Run,
    RunTimeout,
    SyncFailed,
    SynclineClient,
    SynclineClientError,
    TransportError,
)


class FakeTime:
    """A monotonic clock that moves when the client sleeps (and with real time in between)."""

    def __init__(self) -> None:
        self.sleeps: List[float] = []
        self.offset = 0.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.offset += seconds

    def clock(self) -> float:
        import time

        return time.monotonic() + self.offset


def client(api: FakeApi, time: FakeTime, **options: object) -> SynclineClient:
    return SynclineClient(api.url, token=TOKEN, sleep=time.sleep, clock=time.clock, **options)  # type: ignore[arg-type]


class ClientTest(unittest.TestCase):
    def setUp(self) -> None:
        self.api = FakeApi().__enter__()
        self.addCleanup(self.api.__exit__)
        self.time = FakeTime()
        self.client = client(self.api, self.time)

    def test_trigger_posts_the_request_and_returns_the_run(self) -> None:
        run = self.client.trigger("team-a", "contacts", full_resync=True)
        self.assertIsInstance(run, Run)
        self.assertEqual((run.namespace, run.sync, run.phase), ("team-a", "contacts", "Pending"))
        self.assertTrue(run.id.startswith("contacts-r-"))
        self.assertTrue(run.full_resync)
        self.assertEqual(run.requested_at, "2026-01-01T12:00:00Z")
        self.assertFalse(run.finished)
        request = self.api.requests[0]
        self.assertEqual(request["method"], "POST")
        self.assertEqual(request["path"], "/api/v1/namespaces/team-a/syncs/contacts/runs")
        self.assertEqual(request["body"], b'{"fullResync": true}')
        self.assertEqual(request["headers"]["authorization"], f"Bearer {TOKEN}")
        self.assertEqual(request["headers"]["content-type"], "application/json")
        self.assertNotIn("idempotency-key", request["headers"])

    def test_an_idempotent_retry_names_the_same_run(self) -> None:
        first = self.client.trigger("team-a", "contacts", idempotency_key="dbt-run-42")
        again = self.client.trigger("team-a", "contacts", idempotency_key="dbt-run-42")
        self.assertEqual(first.id, again.id)
        self.assertEqual(self.api.requests[1]["headers"]["idempotency-key"], "dbt-run-42")
        with self.assertRaises(ApiError) as caught:
            self.client.trigger("team-a", "contacts", full_resync=True, idempotency_key="dbt-run-42")
        self.assertEqual((caught.exception.code, caught.exception.reason), (422, "IdempotencyKeyReused"))
        with self.assertRaises(ValueError):
            self.client.trigger("team-a", "contacts", idempotency_key="k" * 256)

    def test_get_and_list_runs(self) -> None:
        self.api.add_run(
            "contacts",
            "contacts-s-1",
            plan=[],
            phase="Failed",
            reason="SourceUnreachable",
            message="connection refused",
            counts={"queried": 0, "added": 0, "changed": 0, "removed": 0, "delivered": 0, "failed": 0},
            startedAt="2026-01-01T11:00:00Z",
            finishedAt="2026-01-01T11:00:04Z",
        )
        self.api.add_run("contacts", "contacts-m-2", plan=[], phase="Succeeded", unknownField=1)
        self.api.add_run("deals", "deals-m-3", plan=[], phase="Pending")
        run = self.client.get_run("team-a", "contacts", "contacts-s-1")
        self.assertEqual((run.phase, run.reason, run.message), ("Failed", "SourceUnreachable", "connection refused"))
        self.assertTrue(run.finished)
        self.assertFalse(run.succeeded)
        self.assertIsNotNone(run.counts)
        assert run.counts is not None
        self.assertEqual(run.counts.skipped, 0)
        runs = self.client.list_runs("team-a", "contacts")
        self.assertEqual([r.id for r in runs], ["contacts-m-2", "contacts-s-1"])
        self.assertTrue(runs[0].succeeded)
        self.assertEqual(runs[0].raw["unknownField"], 1)

    def test_error_bodies_become_api_errors(self) -> None:
        with self.assertRaises(ApiError) as caught:
            self.client.get_run("team-a", "nope", "x")
        error = caught.exception
        self.assertEqual((error.code, error.reason), (404, "SyncNotFound"))
        self.assertEqual(error.message, "no Sync nope in namespace team-a")
        self.assertEqual(str(error), "404 SyncNotFound: no Sync nope in namespace team-a")
        with self.assertRaises(ApiError) as caught:
            self.client.get_run("team-a", "contacts", "missing")
        self.assertEqual(caught.exception.reason, "RunNotFound")
        # A proxy's answer that is not the contract's body still says what happened.
        self.api.script.append((502, {}, b"<html>Bad Gateway</html>"))
        with self.assertRaises(ApiError) as caught:
            self.client.trigger("team-a", "contacts")
        self.assertEqual((caught.exception.code, caught.exception.reason), (502, "HTTP502"))
        self.assertIn("Bad Gateway", caught.exception.message)

    def test_the_token_is_never_in_an_error_or_a_repr(self) -> None:
        wrong = SynclineClient(self.api.url, token="not-the-token-xyz", sleep=self.time.sleep)
        with self.assertRaises(ApiError) as caught:
            wrong.list_runs("team-a", "contacts")
        self.assertEqual((caught.exception.code, caught.exception.reason), (401, "Unauthenticated"))
        # A server (or proxy) that echoes the token: scrubbed.
        self.api.script.append((403, {}, error_body(403, "Forbidden", f"token {TOKEN} may not trigger")))
        with self.assertRaises(ApiError) as caught:
            self.client.trigger("team-a", "contacts")
        self.assertEqual(caught.exception.message, "token [token] may not trigger")
        for text in (str(caught.exception), repr(caught.exception), repr(self.client), str(self.client)):
            self.assertNotIn(TOKEN, text)
        # A token a header cannot carry: an error that does not quote it.
        bad = SynclineClient(self.api.url, token="abc\ndef-secret")
        with self.assertRaises(SynclineClientError) as caught_bad:
            bad.list_runs("team-a", "contacts")
        self.assertNotIn("def-secret", str(caught_bad.exception))
        # Nor in a connection error.
        closed = SynclineClient(f"http://127.0.0.1:{free_port()}", token=TOKEN, max_retries=0)
        with self.assertRaises(TransportError) as caught_transport:
            closed.list_runs("team-a", "contacts")
        self.assertNotIn(TOKEN, str(caught_transport.exception))

    def test_the_token_file_is_read_for_every_request(self) -> None:
        self.assertEqual(SynclineClient("https://syncline-api.syncline-system.svc").token_file, DEFAULT_TOKEN_FILE)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "token")
            Path(path).write_text(f"{TOKEN}\n")
            rotating = SynclineClient(self.api.url, token_file=path)
            rotating.list_runs("team-a", "contacts")
            self.api.tokens.add("rotated-token")
            Path(path).write_text("rotated-token")
            rotating.list_runs("team-a", "contacts")
            sent = [r["headers"]["authorization"] for r in self.api.requests]
            self.assertEqual(sent, [f"Bearer {TOKEN}", "Bearer rotated-token"])
            os.remove(path)
            with self.assertRaises(SynclineClientError) as caught:
                rotating.list_runs("team-a", "contacts")
            self.assertIn("cannot read the bearer token", str(caught.exception))

    def test_429_waits_as_retry_after_says(self) -> None:
        self.api.add_run("contacts", "contacts-m-1", plan=[], phase="Succeeded")
        limited = (429, {"Retry-After": "7"}, error_body(429, "RateLimited", "too many requests"))
        self.api.script.extend([limited, limited])
        run = self.client.get_run("team-a", "contacts", "contacts-m-1")
        self.assertTrue(run.succeeded)
        self.assertEqual(self.time.sleeps, [7.0, 7.0])
        self.assertEqual(len(self.api.requests), 3)

    def test_503_then_success_is_retried_with_backoff(self) -> None:
        self.api.script.extend([(503, {}, b"unavailable"), (504, {}, b"gateway timeout")])
        runs = self.client.list_runs("team-a", "contacts")
        self.assertEqual(runs, [])
        self.assertEqual(len(self.time.sleeps), 2)
        self.assertTrue(0.25 <= self.time.sleeps[0] <= 0.5 and 0.5 <= self.time.sleeps[1] <= 1.0, self.time.sleeps)

    def test_retries_stop_after_max_retries(self) -> None:
        self.api.script.extend([(503, {}, b"unavailable")] * 4)
        limited = client(self.api, self.time, max_retries=2)
        with self.assertRaises(ApiError) as caught:
            limited.list_runs("team-a", "contacts")
        self.assertEqual(caught.exception.code, 503)
        self.assertEqual(len(self.api.requests), 3)

    def test_a_post_is_retried_only_with_an_idempotency_key(self) -> None:
        self.api.script.append((503, {}, error_body(503, "Unavailable", "try again")))
        with self.assertRaises(ApiError):
            self.client.trigger("team-a", "contacts")
        self.assertEqual(len(self.api.requests), 1)
        self.assertEqual(self.time.sleeps, [])
        self.api.script.append((503, {}, error_body(503, "Unavailable", "try again")))
        run = self.client.trigger("team-a", "contacts", idempotency_key="k-1")
        self.assertEqual(run.phase, "Pending")
        keys = [r["headers"].get("idempotency-key") for r in self.api.requests[1:]]
        self.assertEqual(keys, ["k-1", "k-1"])

    def test_connection_errors_are_retried_for_get(self) -> None:
        closed = SynclineClient(f"http://127.0.0.1:{free_port()}", token=TOKEN, sleep=self.time.sleep, max_retries=3)
        with self.assertRaises(TransportError):
            closed.list_runs("team-a", "contacts")
        self.assertEqual(len(self.time.sleeps), 3)
        self.time.sleeps.clear()
        with self.assertRaises(TransportError):
            closed.trigger("team-a", "contacts")
        self.assertEqual(self.time.sleeps, [])

    def test_wait_holds_the_request_until_the_run_finished(self) -> None:
        self.api.add_run("contacts", "contacts-m-1", plan=[], phase="Running")
        self.api.update_later("contacts-m-1", 0.3, phase="Succeeded", finishedAt="2026-01-01T12:01:00Z")
        run = self.client.get_run("team-a", "contacts", "contacts-m-1", wait=5)
        self.assertEqual(run.phase, "Succeeded")
        self.assertEqual(self.api.requests[0]["query"], {"wait": "5"})
        # A longer wait is cut to the server's maximum.
        self.client.get_run("team-a", "contacts", "contacts-m-1", wait=600)
        self.assertEqual(self.api.requests[1]["query"], {"wait": "120"})

    def test_wait_for_run_long_polls_until_the_run_finished(self) -> None:
        self.api.add_run("contacts", "contacts-m-1", plan=[{"phase": "Running"}], phase="Pending")
        self.api.update_later("contacts-m-1", 0.3, phase="PartiallySucceeded", reason="RowsRejected")
        run = self.client.wait_for_run("team-a", "contacts", "contacts-m-1", timeout=30, poll_wait=10)
        self.assertEqual((run.phase, run.reason), ("PartiallySucceeded", "RowsRejected"))
        self.assertEqual([r["query"] for r in self.api.requests], [{"wait": "10"}])

    def test_wait_for_run_times_out(self) -> None:
        self.api.honor_wait = False
        self.api.add_run("contacts", "contacts-m-1", plan=[], phase="Running")
        with self.assertRaises(RunTimeout) as caught:
            self.client.wait_for_run("team-a", "contacts", "contacts-m-1", timeout=5)
        self.assertEqual(caught.exception.run.phase, "Running")
        self.assertIsInstance(caught.exception, TimeoutError)
        waits = [r["query"].get("wait") for r in self.api.requests]
        self.assertEqual(waits, ["5", "3", "1", None])
        self.assertIn("did not finish within 5s (still Running)", str(caught.exception))

    def test_run_and_wait_returns_the_succeeded_run(self) -> None:
        self.api.plan = [{"phase": "Running", "startedAt": "2026-01-01T12:00:01Z"}, {"phase": "Succeeded"}]
        self.api.script.append((503, {}, error_body(503, "Unavailable", "leader changing")))
        run = self.client.run_and_wait("team-a", "contacts", timeout=60, poll_wait=5)
        self.assertTrue(run.succeeded)
        posts = [r for r in self.api.requests if r["method"] == "POST"]
        self.assertEqual(len(posts), 2)
        key = posts[0]["headers"]["idempotency-key"]
        self.assertTrue(key.startswith("syncline-client-"))
        self.assertEqual(posts[1]["headers"]["idempotency-key"], key)
        self.assertEqual(len(self.api.runs), 1)

    def test_run_and_wait_raises_sync_failed(self) -> None:
        self.api.plan = [{"phase": "Failed", "reason": "SafetyRailTripped", "message": "would remove 90% of rows"}]
        with self.assertRaises(SyncFailed) as caught:
            self.client.run_and_wait("team-a", "contacts", timeout=60)
        self.assertEqual(caught.exception.run.reason, "SafetyRailTripped")
        self.assertRegex(
            str(caught.exception),
            r"^run contacts-m-0001 of team-a/contacts Failed \(SafetyRailTripped\): would remove 90% of rows$",
        )

    def test_partial_success_fails_unless_allowed(self) -> None:
        self.api.plan = [{"phase": "PartiallySucceeded", "reason": "RowsRejected", "message": "2 rows rejected"}]
        with self.assertRaises(SyncFailed):
            self.client.run_and_wait("team-a", "contacts", timeout=60)
        run = self.client.run_and_wait("team-a", "contacts", timeout=60, allow_partial=True)
        self.assertEqual(run.phase, "PartiallySucceeded")

    def test_a_superseded_run_ends_with_the_run_that_covered_it(self) -> None:
        self.api.add_run("contacts", "contacts-r-9", plan=[{"phase": "Failed", "reason": "SourceUnreachable"}], phase="Running")
        self.api.plan = [{"phase": "Superseded"}, {"phase": "Superseded", "supersededBy": "contacts-r-9"}]
        with self.assertRaises(SyncFailed) as caught:
            self.client.run_and_wait("team-a", "contacts", timeout=60)
        self.assertEqual(caught.exception.run.id, "contacts-r-9")
        self.assertEqual(caught.exception.requested.id, "contacts-m-0002")
        self.assertIn("(covering run contacts-m-0002) Failed (SourceUnreachable)", str(caught.exception))

    def test_run_and_wait_times_out(self) -> None:
        self.api.honor_wait = False
        self.api.plan = [{"phase": "Running"}]
        with self.assertRaises(RunTimeout) as caught:
            self.client.run_and_wait("team-a", "contacts", timeout=4)
        self.assertEqual(caught.exception.timeout, 4)
        self.assertEqual(caught.exception.run.phase, "Running")


class HttpsTest(unittest.TestCase):
    """TLS: the API's certificate is checked against ca_file; verify=False skips the check."""

    @unittest.skipUnless(shutil.which("openssl"), "needs openssl to make a certificate")
    def test_tls_with_a_ca_file(self) -> None:
        import ssl

        with tempfile.TemporaryDirectory() as folder:
            ca, cert, key = make_certificate(Path(folder))
            with FakeApi() as api:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(cert, key)
                api.server.socket = context.wrap_socket(api.server.socket, server_side=True)
                url = api.url.replace("http://127.0.0.1", "https://localhost")
                trusted = SynclineClient(url, token=TOKEN, ca_file=ca)
                self.assertEqual(trusted.list_runs("team-a", "contacts"), [])
                untrusted = SynclineClient(url, token=TOKEN, max_retries=0)
                with self.assertRaises(TransportError) as caught:
                    untrusted.list_runs("team-a", "contacts")
                self.assertIn("CERTIFICATE_VERIFY_FAILED", str(caught.exception))
                unverified = SynclineClient(url, token=TOKEN, verify=False)
                self.assertEqual(unverified.list_runs("team-a", "contacts"), [])


class CompatibilityTest(unittest.TestCase):
    def test_the_package_is_python_3_9_syntax(self) -> None:
        for source in (HERE.parent / "syncline_client").glob("*.py"):
            ast.parse(source.read_text(), filename=str(source), feature_version=(3, 9))

    def test_the_package_ships_its_types(self) -> None:
        self.assertTrue((HERE.parent / "syncline_client" / "py.typed").exists())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certificate(folder: Path) -> Tuple[str, str, str]:
    """A CA and a certificate for localhost signed by it, as the chart's selfSigned mode makes."""
    ca_key, ca, key, csr, cert = (str(folder / n) for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt"))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1", "-subj", "/CN=test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", str(ext))
    return ca, cert, key


if __name__ == "__main__":
    unittest.main()
