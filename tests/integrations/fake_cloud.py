"""A fake mcpr cloud for tests: a real HTTP/1.1 server on 127.0.0.1, port 0, in threads.

It speaks the REST shape documented in `mcpr_integrations.cloud.api` and accepts uploads
on `POST /api/ingest-events`. Tests script the ingest answers (`script_ingest`), make it
accept connections and never answer (`hang()`), and read back what it received. Every
handler thread is joined on exit; a hanging handler is released first.

    with fake_cloud() as cloud:
        ... cloud.url, cloud.ingested(), cloud.wait_for(lambda: ...) ...
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["INGEST", "FakeCloud", "Received", "Reply", "fake_cloud"]

INGEST = "/api/ingest-events"
#: Upper bound for any wait in these tests; only a broken sink ever reaches it.
WAIT = 5.0


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the fake received it (header names lower-case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int

    def json(self) -> Any:
        """The body, decoded as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = field(default_factory=dict)


class FakeCloud:
    """The server's state: what it received, what it will answer, its accounts."""

    def __init__(self) -> None:
        self.url = ""
        self.cond = threading.Condition()
        self.received: list[Received] = []
        self.errors: list[BaseException | None] = []  # handler failures (bugs in the fake)
        self.answered = 0  # requests answered so far
        self._script: deque[Reply] = deque()
        self._hanging = False
        self._release = threading.Event()
        # Accounts: the mailed codes, valid access tokens, projects, servers, ingest tokens.
        self.codes: dict[str, str] = {}
        self.access_tokens: set[str] = set()
        self.projects: list[dict[str, str]] = []
        self.servers: list[dict[str, str]] = []
        self.tokens: list[dict[str, str]] = []

    # -- test-side controls -------------------------------------------------------------------

    def script_ingest(self, *replies: Reply) -> None:
        """Answer the next uploads with `replies`, in order; 202 after that."""
        with self.cond:
            self._script.extend(replies)

    def hang(self) -> None:
        """From now on, read every request and never answer it (until the fake closes)."""
        with self.cond:
            self._hanging = True

    def release(self) -> None:
        """Let hanging handlers go: they close their connections without an answer."""
        self._release.set()

    def wait_for(self, predicate: Callable[[], bool], within: float = WAIT) -> None:
        """Wait until `predicate()` holds over the received requests; fail after `within`."""
        with self.cond:
            if not self.cond.wait_for(predicate, within):
                raise AssertionError(f"fake cloud: condition not met within {within}s")

    def uploads(self) -> list[Received]:
        """The ingest requests received so far."""
        with self.cond:
            return [r for r in self.received if r.path == INGEST]

    def ingested(self) -> list[list[dict[str, Any]]]:
        """The batches received so far (whatever the answer was), decoded."""
        return [r.json() for r in self.uploads()]

    # -- the server side ----------------------------------------------------------------------

    def answer(self, request: Received) -> Reply | None:
        """The reply to one request; None means never answer (hang)."""
        with self.cond:
            self.received.append(request)
            self.cond.notify_all()
            hanging = self._hanging
            scripted = self._script.popleft() if request.path == INGEST and self._script else None
        if hanging:
            self._release.wait(30)
            return None
        reply = (scripted or Reply(202)) if request.path == INGEST else self._api(request)
        with self.cond:
            self.answered += 1
        return reply

    def _api(self, request: Received) -> Reply:
        route = (request.method, request.path)
        body: dict[str, str] = request.json() if request.body else {}
        if route == ("POST", "/api/auth/email-code"):
            self.codes[body["email"]] = "424242"
            return Reply(202)
        if route == ("POST", "/api/auth/verify"):
            if self.codes.get(body.get("email", "")) != body.get("code"):
                return _error(401, "invalid_code", "that code is not valid")
            token = f"access-{len(self.access_tokens) + 1}-secret"
            self.access_tokens.add(token)
            return Reply(200, body={"access_token": token})
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in self.access_tokens:
            return _error(401, "unauthorized", f"unknown credentials {auth}")
        if route == ("GET", "/api/projects"):
            return Reply(200, body={"projects": self.projects})
        if route == ("POST", "/api/projects"):
            slug = re.sub(r"[^a-z0-9]+", "-", body["name"].lower()).strip("-")
            project = {"id": f"p{len(self.projects) + 1}", "slug": slug, "name": body["name"]}
            self.projects.append(project)
            return Reply(201, body=project)
        if match := re.fullmatch(r"/api/projects/([^/]+)/servers", request.path):
            project_id = match.group(1)
            if request.method == "GET":
                mine = [s for s in self.servers if s["project_id"] == project_id]
                return Reply(200, body={"servers": mine})
            if any(s["slug"] == body["slug"] for s in self.servers):
                return _error(409, "slug_taken", "that slug is taken")
            server = {"id": f"s{len(self.servers) + 1}", "project_id": project_id, **body}
            self.servers.append(server)
            return Reply(201, body=server)
        if match := re.fullmatch(r"/api/servers/([^/]+)/tokens", request.path):
            owner = next(s for s in self.servers if s["id"] == match.group(1))
            issued = {"id": f"t{len(self.tokens) + 1}", "token": f"mcpr_ingest_{len(self.tokens)}"}
            issued["server"] = owner["slug"]
            self.tokens.append(issued)
            return Reply(201, body=issued)
        return _error(404, "not_found", request.path)


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, body={"error": {"code": code, "message": message}})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible
    timeout = 10  # a client that never closes cannot keep the fake from shutting down
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = Received(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length),
            client_port=self.client_address[1],
        )
        reply = self.server.cloud.answer(request)
        if reply is None:
            self.close_connection = True
            return
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `FakeCloud.received` instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins every handler thread

    def __init__(self, cloud: FakeCloud) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cloud = cloud

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep a handler's failure for the test; a client that hung up is expected."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            self.cloud.errors.append(error)


@contextmanager
def fake_cloud() -> Iterator[FakeCloud]:
    """Run a fake cloud for the duration of the block."""
    cloud = FakeCloud()
    server = _Server(cloud)
    cloud.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-cloud")
    thread.start()
    try:
        yield cloud
    finally:
        cloud.release()
        server.shutdown()
        server.server_close()
        thread.join()
    assert not cloud.errors, cloud.errors
