"""The cloud token never appears in a log line, an error message, a repr or an uploaded event.

Each test drives the sink or the client through success and failure against the fake cloud,
captures everything written (every logger at DEBUG, including urllib3's, and the process's
stdout and stderr), and searches it for the token.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from mcpr_core.events import RequestEvent
from mcpr_integrations.cloud._http import BearerAuth, redact
from mcpr_integrations.cloud.api import CloudAPIError, CloudClient
from mcpr_integrations.cloud.config import CloudConfig, load_cloud_config
from mcpr_integrations.cloud.sink import CloudSink
from tests.integrations.fake_cloud import WAIT, FakeCloud, Reply, fake_cloud

TOKEN = "mcpr_tok_N3ver-Log-Me"


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    """A fake cloud, shut down (threads joined) after the test."""
    with fake_cloud() as running:
        yield running


def event(i: int, **fields: object) -> RequestEvent:
    """A request event; `fields` override."""
    base: dict[str, object] = {"id": f"r{i}", "ts": i, "proxy": "p", "method": "POST"}
    base |= {"path": "/mcp", "status": 200, "latency_us": 1, "request_size": 1, "note": "ok"}
    return RequestEvent(**(base | fields))  # type: ignore[arg-type]


def assert_hidden(*texts: str) -> None:
    """None of `texts` contains the token."""
    for text in texts:
        assert TOKEN not in text


def test_sink_never_logs_the_token(
    cloud: FakeCloud, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Through 2xx, 400, 401, 429, 503, a silent cloud and a refused connection: no token."""
    caplog.set_level(logging.DEBUG)
    cloud.script_ingest(
        Reply(202),
        Reply(400, body={"echo": f"Bearer {TOKEN}"}),
        Reply(401),
        Reply(429, headers=(("Retry-After", "0"),)),
        Reply(503),
    )
    config = CloudConfig(token=TOKEN, endpoint=cloud.url, batch_size=1, server="s")
    sink = CloudSink(
        config, sleep=lambda s: None, retry_budget=1.0, request_timeout=0.3, close_timeout=0.3
    )
    try:
        for i in range(5):
            sink.on_event(event(i, error_msg="client sent nonsense"))
        assert sink.wait_idle(WAIT)
        cloud.hang()
        sink.on_event(event(9))
        cloud.wait_for(lambda: len(cloud.uploads()) == 8)
        texts = [repr(sink), str(sink.statistics())]
    finally:
        sink.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = CloudSink(
        CloudConfig(token=TOKEN, endpoint=f"http://127.0.0.1:{port}", batch_size=1),
        sleep=lambda s: None,
        retry_budget=0.5,
    )
    refused.on_event(event(1))
    refused.close()
    out, err = capfd.readouterr()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "cloud_rejected" in logged
    assert "cloud_unreachable" in logged
    assert "urllib3" in {record.name.split(".")[0] for record in caplog.records}
    assert_hidden(logged, out, err, *texts, repr(refused))
    assert_hidden(*(upload.body.decode() for upload in cloud.uploads()))
    assert all(u.headers["authorization"] == f"Bearer {TOKEN}" for u in cloud.uploads())


def test_client_errors_and_reprs_hide_tokens(
    cloud: FakeCloud, caplog: pytest.LogCaptureFixture
) -> None:
    """Access and ingest tokens stay out of errors, reprs and logs of the API client."""
    caplog.set_level(logging.DEBUG)
    with CloudClient(cloud.url) as api:
        api.request_code("ada@example.com")
        api.verify_code("ada@example.com", "424242")
        server = api.create_server(api.create_project("P").id, "S", "s")
        token = api.create_token(server.id, "mcpr")
        texts = [repr(api), repr(token)]
    with CloudClient(cloud.url, access_token=TOKEN) as stale:
        with pytest.raises(CloudAPIError) as caught:
            stale.list_projects()
        texts += [repr(stale), str(caught.value), repr(caught.value)]
    assert "[redacted]" in str(caught.value)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert_hidden(logged, *texts)
    for text in (logged, *texts):
        assert token.token not in text
        assert "access-1-secret" not in text


def test_config_problems_never_quote_the_token() -> None:
    """A token refused by validation is described, not repeated."""
    _, problems = load_cloud_config({"cloud": {"token": f"{TOKEN} trailing"}})
    assert_hidden(*(problem.message for problem in problems))


def test_redact_and_auth_repr() -> None:
    """`redact` masks each secret; the auth object's repr omits the token."""
    assert redact(f"a {TOKEN} b {TOKEN}", [TOKEN, None, ""]) == "a [redacted] b [redacted]"
    assert_hidden(repr(BearerAuth(TOKEN)))
