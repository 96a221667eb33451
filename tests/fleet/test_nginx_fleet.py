"""The nginx configuration of docs/DEPLOY.md, proven with real programs: sessions hold.

Two SDK test servers (legacy sessions live in their memory), each behind its own `mcpr proxy
run` with its own `[fleet] replica` ("a" on asyncio, "b" on trio), behind one nginx running
the docs' `conf.d` file as it is written, only its addresses replaced (read from DEPLOY.md
here, so the docs and the test cannot drift). Twenty legacy SDK clients make fifty calls
each through nginx without one session error, each client's calls land on one replica (the
two stores say so), and 2026-07-28 clients, which have no session, are spread over both.

The same run through the same config with `proxy_pass` aimed at the plain round-robin pool
fails: clients get "session not found" errors. That is the proof the first test can fail.

The SDK clients run on asyncio only: the event loops under test are the replicas' own, and
those are asyncio and trio.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import mcp
import pytest
from mcp import types

from tests.children import Child, free_port, mcpr_proxy, sdk_server, system_binary

pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])

DEPLOY_MD: Final = Path(__file__).parents[2] / "docs" / "DEPLOY.md"
LEGACY_CLIENTS: Final = 20
CALLS: Final = 50
MODERN_CLIENTS: Final = 4
MODERN_CALLS: Final = 10
#: Bound for one client's whole run (50 calls take well under a second on loopback).
CLIENT_TIMEOUT: Final = 30.0
REPLICAS: Final = {"a": "asyncio", "b": "trio"}
#: Bound for the stores to show a run's calls (they commit every 200 ms).
STORE_TIMEOUT: Final = 10.0


def docs_nginx_config() -> str:
    """The nginx block that follows the `fleet-nginx` marker in docs/DEPLOY.md."""
    text = DEPLOY_MD.read_text()
    match = re.search(r"<!-- fleet-nginx:.*?-->\s*```nginx\n(.*?)```", text, re.DOTALL)
    assert match is not None, "docs/DEPLOY.md lost its fleet-nginx block"
    return match.group(1)


def replace_once(text: str, old: str, new: str) -> str:
    """`text` with every `old` replaced, insisting that `old` is there."""
    assert old in text, f"the docs' nginx config no longer contains {old!r}"
    return text.replace(old, new)


@dataclass
class Fleet:
    """The programs of the module: where clients connect, and each replica's store."""

    routed_url: str
    round_robin_url: str
    stores: dict[str, Path]


def nginx_main_config(tmp: Path, site: Path) -> str:
    """A main nginx.conf around a `conf.d` file: foreground, every file under `tmp`."""
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / (kind + '_temp')};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach `tmp`
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        f"error_log {tmp / 'error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n    access_log off;\n{temp}\n    include {site};\n}}\n"
    )


def start_nginx(tmp: Path, mcpr_ports: dict[str, int], *, round_robin: bool) -> tuple[Child, int]:
    """nginx with the docs' config (addresses replaced), or its round-robin variant."""
    nginx = system_binary("nginx")
    tmp.mkdir()
    site_text = docs_nginx_config()
    for name, port in mcpr_ports.items():
        site_text = replace_once(site_text, f"mcpr-{name}.internal:3000", f"127.0.0.1:{port}")
    listen = free_port()
    site_text = replace_once(site_text, "listen 80;", f"listen 127.0.0.1:{listen};")
    if round_robin:
        site_text = replace_once(
            site_text, "proxy_pass http://$mcpr_pool;", "proxy_pass http://mcpr_fleet;"
        )
    site = tmp / "mcpr.conf"
    site.write_text(site_text)
    main = tmp / "nginx.conf"
    main.write_text(nginx_main_config(tmp, site))
    argv = [nginx, "-p", str(tmp), "-c", str(main), "-e", str(tmp / "error.log")]
    return Child(argv, tmp / "nginx.log"), listen


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Both upstreams, both replicas, and two nginx: the docs' config and round-robin."""
    system_binary("nginx")
    tmp = tmp_path_factory.mktemp("fleet")
    children: list[tuple[Child, int]] = []  # and the port each listens on
    try:
        ports = {name: (free_port(), free_port()) for name in REPLICAS}  # (upstream, mcpr)
        stores = {name: tmp / f"store-{name}.db" for name in REPLICAS}
        for name, backend in REPLICAS.items():
            server = sdk_server(ports[name][0], tmp / f"server-{name}.log")
            children.append((server, ports[name][0]))
            config = tmp / f"mcpr-{name}.toml"
            config.write_text(
                f'name = "fleet-{name}"\nmcp = "http://127.0.0.1:{ports[name][0]}/mcp"\n'
                f'port = {ports[name][1]}\nadmin = "none"\nbackend = "{backend}"\n'
                f'events_format = "off"\n\n[fleet]\nreplica = "{name}"\n'
            )
            env = {"MCPR_DB": str(stores[name]), "MCPR_HOME": str(tmp / f"home-{name}")}
            proxy = mcpr_proxy(config, tmp / f"mcpr-{name}.log", env)
            children.append((proxy, ports[name][1]))
        mcpr_ports = {name: ports[name][1] for name in REPLICAS}
        routed = start_nginx(tmp / "routed", mcpr_ports, round_robin=False)
        plain = start_nginx(tmp / "round-robin", mcpr_ports, round_robin=True)
        children += [routed, plain]
        # Everything starts at once; mcpr does not need its upstream to be up yet.
        for child, port in children:
            child.wait_listening(port)
        yield Fleet(f"http://127.0.0.1:{routed[1]}/mcp", f"http://127.0.0.1:{plain[1]}/mcp", stores)
    finally:
        for child, _ in reversed(children):
            child.stop()


@dataclass
class Tally:
    """What the clients of one run saw."""

    ok: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, who: str, exc: BaseException) -> None:
        """Record one failed call."""
        self.errors.append(f"{who}: {type(exc).__name__}: {exc}")


async def legacy_client(url: str, name: str, tally: Tally, stop_on_error: bool) -> None:
    """One legacy client: initialize, then `CALLS` echo calls in its session."""
    info = types.Implementation(name=name, version="1")
    try:
        with anyio.fail_after(CLIENT_TIMEOUT):
            async with mcp.Client(url, mode="legacy", client_info=info) as client:
                for n in range(CALLS):
                    try:
                        result = await client.call_tool("echo", {"text": f"{name} {n}"})
                    except Exception as exc:
                        tally.error(name, exc)
                        if stop_on_error:
                            return
                        continue
                    assert not result.is_error, result
                    tally.ok += 1
    except Exception as exc:  # a session that broke takes the client down with it
        tally.error(name, exc)


async def modern_client(url: str, name: str, tally: Tally) -> None:
    """One 2026-07-28 client: `MODERN_CALLS` stateless echo calls."""
    info = types.Implementation(name=name, version="1")
    with anyio.fail_after(CLIENT_TIMEOUT):
        async with mcp.Client(url, mode="2026-07-28", client_info=info) as client:
            for n in range(MODERN_CALLS):
                result = await client.call_tool("echo", {"text": f"{name} {n}"})
                assert not result.is_error, result
                tally.ok += 1


Row = tuple[str | None, str, str | None, str]  # session id, client, era, outcome


def stored_calls(store: Path, prefix: str) -> list[Row]:
    """The stored tools/call rows of clients whose name starts with `prefix`."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT session_id, client_name, era, status FROM requests"
            " WHERE method = 'tools/call' AND client_name LIKE ? || '%'",
            (prefix,),
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def wait_stored(stores: dict[str, Path], prefix: str, count: int) -> dict[str, list[Row]]:
    """Each replica's rows for `prefix` clients, once `count` are stored in all.

    The stores commit in batches every 200 ms, from processes this test cannot wait on
    otherwise, so they are read again until the count is reached (within STORE_TIMEOUT).
    """
    with anyio.fail_after(STORE_TIMEOUT):
        while True:
            rows = {name: stored_calls(store, prefix) for name, store in stores.items()}
            if sum(len(r) for r in rows.values()) >= count:
                return rows
            await anyio.sleep(0.1)


async def test_docs_config_keeps_every_session_on_its_replica(fleet: Fleet) -> None:
    """1000 legacy calls through the docs' nginx: no session error, each client on one replica."""
    legacy = Tally()
    async with anyio.create_task_group() as group:
        for n in range(LEGACY_CLIENTS):
            group.start_soon(legacy_client, fleet.routed_url, f"legacy-{n:02}", legacy, False)
    assert legacy.errors == []
    assert legacy.ok == LEGACY_CLIENTS * CALLS
    modern = Tally()
    for n in range(MODERN_CLIENTS):  # one at a time, so round-robin alternates their calls
        await modern_client(fleet.routed_url, f"modern-{n}", modern)
    assert modern.ok == MODERN_CLIENTS * MODERN_CALLS

    rows = await wait_stored(fleet.stores, "legacy-", LEGACY_CLIENTS * CALLS)
    replicas_of: dict[str, set[str]] = {}
    for name, calls in rows.items():
        for session_id, client, era, outcome in calls:
            assert (era, outcome) == ("legacy", "ok"), (name, session_id, client)
            assert session_id is not None
            assert session_id.startswith(f"{name}."), (name, session_id)
            replicas_of.setdefault(client, set()).add(name)
    assert sum(len(calls) for calls in rows.values()) == LEGACY_CLIENTS * CALLS
    # Every client's calls are on exactly one replica, and both replicas hold sessions.
    assert len(replicas_of) == LEGACY_CLIENTS
    assert all(len(names) == 1 for names in replicas_of.values()), replicas_of
    assert set().union(*replicas_of.values()) == set(REPLICAS)

    rows = await wait_stored(fleet.stores, "modern-", MODERN_CLIENTS * MODERN_CALLS)
    spread: dict[str, set[str]] = {}
    for name, calls in rows.items():
        for session_id, client, era, outcome in calls:
            assert (session_id, era, outcome) == (None, "modern", "ok"), (name, client)
            spread.setdefault(client, set()).add(name)
    # Stateless clients are balanced call by call: every one of them reached both replicas.
    assert spread == {f"modern-{n}": set(REPLICAS) for n in range(MODERN_CLIENTS)}


async def test_plain_round_robin_loses_sessions(fleet: Fleet) -> None:
    """The same legacy run balanced round-robin, without the session map, fails."""
    tally = Tally()
    async with anyio.create_task_group() as group:
        for n in range(LEGACY_CLIENTS):
            group.start_soon(legacy_client, fleet.round_robin_url, f"rr-{n:02}", tally, True)
    assert len(tally.errors) >= LEGACY_CLIENTS // 2, tally.errors
    assert any("Session not found" in error for error in tally.errors), tally.errors[:5]
    assert tally.ok < LEGACY_CLIENTS * CALLS
