"""A small typed client for the mcpr cloud API: what `mcpr proxy setup` needs, nothing more.

The REST shape it speaks (JSON bodies in and out, under `<endpoint>/api`):

    POST /api/auth/email-code              {"email"}           -> 202 {}
    POST /api/auth/verify                  {"email", "code"}   -> 200 {"access_token"}
    GET  /api/projects                                         -> 200 {"projects": [Project]}
    POST /api/projects                     {"name"}            -> 201 Project
    GET  /api/projects/{project}/servers                       -> 200 {"servers": [Server]}
    POST /api/projects/{project}/servers   {"name", "slug"}    -> 201 Server
    POST /api/servers/{server}/tokens      {"name"}            -> 201 IngestToken

    Project     = {"id", "slug", "name"}
    Server      = {"id", "slug", "name", "project_id"}
    IngestToken = {"id", "token", "server"}      (server: the server's slug)

Login is by email code: `request_code` has the cloud mail a one-time code, `verify_code`
trades it for an access token that the client then sends as `Authorization: Bearer` on
every other call. An ingest token (what `[cloud] token` holds, for `POST
/api/ingest-events`) is shown once, when created.

Errors: any status other than the one listed answers `{"error": {"code", "message"}}` (both
optional) and raises `CloudAPIError`; a network failure raises it with `status` None, an
answer of the wrong shape with code `bad_response`. Neither token ever appears in an error
message or a repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests

from mcpr_integrations.cloud._http import BearerAuth, close_session, new_session, redact
from mcpr_integrations.cloud.config import DEFAULT_ENDPOINT, parse_endpoint

__all__ = ["CloudAPIError", "CloudClient", "IngestToken", "Project", "Server"]

#: Seconds a call may take (connect and each read).
TIMEOUT = 10.0
_MESSAGE_MAX = 300


@dataclass(frozen=True, slots=True)
class Project:
    """A project: the account-level grouping of servers."""

    id: str
    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class Server:
    """One upstream MCP server as the cloud knows it; `slug` is what events carry."""

    id: str
    slug: str
    name: str
    project_id: str


@dataclass(frozen=True, slots=True)
class IngestToken:
    """A token allowed to upload events for one server (`token` is left out of the repr)."""

    id: str
    token: str = field(repr=False)
    server: str


class CloudAPIError(Exception):
    """A call failed: refused (`status` set), unreachable or unreadable (`status` None).

    `code` is the cloud's error code, else `http_<status>`, `unreachable` or `bad_response`.
    """

    def __init__(self, status: int | None, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        where = f"HTTP {status}" if status is not None else "cloud"
        super().__init__(f"{where}: {code}: {message}" if message else f"{where}: {code}")


class CloudClient:
    """Calls the cloud API over one `requests.Session`; use it as a context manager."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        access_token: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        """Raise ValueError for an endpoint that is not an https (or loopback http) URL."""
        self.endpoint = parse_endpoint(endpoint)
        self._timeout = timeout
        self._access_token = access_token
        self._secrets: list[str] = [access_token] if access_token else []
        self._session = new_session(access_token)

    def __repr__(self) -> str:
        state = "logged in" if self._access_token else "anonymous"
        return f"<CloudClient {self.endpoint} {state}>"

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the session's connections."""
        close_session(self._session)

    @property
    def logged_in(self) -> bool:
        """True once an access token is known."""
        return self._access_token is not None

    # -- login --------------------------------------------------------------------------------

    def request_code(self, email: str) -> None:
        """Have the cloud mail a one-time login code to `email`."""
        self._call("POST", "/api/auth/email-code", {"email": email}, expect=202)

    def verify_code(self, email: str, code: str) -> None:
        """Trade the mailed code for an access token, used by every later call."""
        answer = self._call("POST", "/api/auth/verify", {"email": email, "code": code}, expect=200)
        token = _text(answer, "access_token")
        self._access_token = token
        self._secrets.append(token)
        self._session.auth = BearerAuth(token)

    # -- projects, servers, tokens ------------------------------------------------------------

    def list_projects(self) -> list[Project]:
        """The projects the logged-in user can see."""
        answer = self._call("GET", "/api/projects", None, expect=200)
        return [_project(item) for item in _items(answer, "projects")]

    def create_project(self, name: str) -> Project:
        """Create a project named `name`."""
        return _project(self._call("POST", "/api/projects", {"name": name}, expect=201))

    def list_servers(self, project_id: str) -> list[Server]:
        """The servers of one project."""
        path = f"/api/projects/{quote(project_id, safe='')}/servers"
        answer = self._call("GET", path, None, expect=200)
        return [_server(item) for item in _items(answer, "servers")]

    def create_server(self, project_id: str, name: str, slug: str) -> Server:
        """Create a server in a project; `slug` is what its events will carry."""
        path = f"/api/projects/{quote(project_id, safe='')}/servers"
        return _server(self._call("POST", path, {"name": name, "slug": slug}, expect=201))

    def create_token(self, server_id: str, name: str) -> IngestToken:
        """Create an ingest token for a server; its value is only shown this once."""
        path = f"/api/servers/{quote(server_id, safe='')}/tokens"
        answer = self._call("POST", path, {"name": name}, expect=201)
        token = IngestToken(
            id=_text(answer, "id"), token=_text(answer, "token"), server=_text(answer, "server")
        )
        self._secrets.append(token.token)
        return token

    # -- plumbing -----------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None, *, expect: int
    ) -> Mapping[str, Any]:
        try:
            response = self._session.request(
                method,
                self.endpoint + path,
                json=body,
                timeout=self._timeout,
                allow_redirects=False,
                headers={"Accept": "application/json"},
            )
        except requests.RequestException as exc:
            message = redact(f"{type(exc).__name__}: {exc}", self._secrets)
            raise CloudAPIError(None, "unreachable", message) from None
        with response:
            status = response.status_code
            try:
                answer = response.json()
            except ValueError:
                answer = None
        if status != expect:
            code, message = _error_of(answer, status)
            raise CloudAPIError(status, code, redact(message, self._secrets))
        if not isinstance(answer, Mapping):
            raise CloudAPIError(status, "bad_response", f"expected a JSON object from {path}")
        return answer


def _error_of(answer: object, status: int) -> tuple[str, str]:
    """The `error.code` and `error.message` of a refusal, with fallbacks."""
    error = answer.get("error") if isinstance(answer, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    code = code if isinstance(code, str) and code else f"http_{status}"
    message = message[:_MESSAGE_MAX] if isinstance(message, str) else ""
    return code, message


def _text(answer: Mapping[str, Any], key: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise CloudAPIError(None, "bad_response", f"expected a string {key!r} in the answer")
    return value


def _items(answer: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = answer.get(key)
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise CloudAPIError(None, "bad_response", f"expected an array of objects {key!r}")
    return value


def _project(item: Mapping[str, Any]) -> Project:
    return Project(id=_text(item, "id"), slug=_text(item, "slug"), name=_text(item, "name"))


def _server(item: Mapping[str, Any]) -> Server:
    return Server(
        id=_text(item, "id"),
        slug=_text(item, "slug"),
        name=_text(item, "name"),
        project_id=_text(item, "project_id"),
    )
