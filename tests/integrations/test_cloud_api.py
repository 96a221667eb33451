"""Tests of the cloud API client against the fake cloud over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from mcpr_integrations.cloud.api import CloudAPIError, CloudClient, IngestToken, Project, Server
from tests.integrations.fake_cloud import FakeCloud, fake_cloud


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    """A fake cloud, shut down (threads joined) after the test."""
    with fake_cloud() as running:
        yield running


@pytest.fixture
def client(cloud: FakeCloud) -> Iterator[CloudClient]:
    """A client of the fake cloud, logged in as ada@example.com."""
    with CloudClient(cloud.url) as api:
        api.request_code("ada@example.com")
        api.verify_code("ada@example.com", cloud.codes["ada@example.com"])
        yield api


def test_login_by_email_code(cloud: FakeCloud) -> None:
    """The mailed code buys an access token, sent as a bearer token on later calls."""
    with CloudClient(cloud.url) as api:
        assert not api.logged_in
        api.request_code("ada@example.com")
        api.verify_code("ada@example.com", "424242")
        assert api.logged_in
        assert api.list_projects() == []
    [_, verify, listing] = cloud.received
    assert (verify.path, verify.json()) == (
        "/api/auth/verify",
        {"email": "ada@example.com", "code": "424242"},
    )
    assert listing.headers["authorization"] == "Bearer access-1-secret"


def test_wrong_code_is_refused(cloud: FakeCloud) -> None:
    """A wrong code raises CloudAPIError with the cloud's status, code and message."""
    with CloudClient(cloud.url) as api:
        api.request_code("ada@example.com")
        with pytest.raises(CloudAPIError) as caught:
            api.verify_code("ada@example.com", "000000")
    error = caught.value
    assert (error.status, error.code) == (401, "invalid_code")
    assert error.message == "that code is not valid"
    assert str(error) == "HTTP 401: invalid_code: that code is not valid"
    assert not api.logged_in


def test_projects_servers_and_tokens(client: CloudClient) -> None:
    """Create a project, a server in it and an ingest token, and list them back."""
    project = client.create_project("Weather Co")
    assert project == Project(id="p1", slug="weather-co", name="Weather Co")
    assert client.list_projects() == [project]
    server = client.create_server(project.id, "Weather API", "weather-api")
    assert server == Server(id="s1", slug="weather-api", name="Weather API", project_id="p1")
    assert client.list_servers(project.id) == [server]
    token = client.create_token(server.id, "mcpr on host-1")
    assert token == IngestToken(id="t1", token="mcpr_ingest_0", server="weather-api")


def test_refusals_carry_the_cloud_error(client: CloudClient) -> None:
    """A 409 from the cloud surfaces as CloudAPIError(409, its code)."""
    project = client.create_project("Weather")
    client.create_server(project.id, "A", "same")
    with pytest.raises(CloudAPIError) as caught:
        client.create_server(project.id, "B", "same")
    assert (caught.value.status, caught.value.code) == (409, "slug_taken")


def test_answer_of_the_wrong_shape(cloud: FakeCloud, client: CloudClient) -> None:
    """A project missing fields is a `bad_response` error, not a KeyError."""
    cloud.projects.append({"id": "p9"})
    with pytest.raises(CloudAPIError) as caught:
        client.list_projects()
    assert caught.value.code == "bad_response"


def test_unreachable_cloud() -> None:
    """Nothing listening: CloudAPIError with status None and code `unreachable`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with CloudClient(f"http://127.0.0.1:{port}") as api, pytest.raises(CloudAPIError) as caught:
        api.request_code("ada@example.com")
    assert (caught.value.status, caught.value.code) == (None, "unreachable")
    assert str(caught.value).startswith("cloud: unreachable: ConnectionError")


def test_tokens_echoed_by_the_cloud_are_masked(cloud: FakeCloud) -> None:
    """An error message that quotes the access token shows `[redacted]` instead."""
    with CloudClient(cloud.url, access_token="stale-secret-token") as api:
        with pytest.raises(CloudAPIError) as caught:
            api.list_projects()
        assert "stale-secret-token" not in repr(api)
    assert caught.value.message == "unknown credentials Bearer [redacted]"
    assert "stale-secret-token" not in str(caught.value)


def test_plain_http_endpoint_is_refused() -> None:
    """The client, like the config, refuses http to a host that is not loopback."""
    with pytest.raises(ValueError, match="must use https"):
        CloudClient("http://cloud.example.com")


def test_ingest_token_repr_hides_the_value() -> None:
    """An IngestToken prints without its secret."""
    assert "s3cr3t" not in repr(IngestToken(id="t1", token="s3cr3t", server="x"))
