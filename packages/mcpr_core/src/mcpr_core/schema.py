"""Schema capture: what the upstream exposes, versioned and diffed.

Theory of operation
-------------------
A `SchemaCapture` watches the results of the methods that describe a server (PRODUCT.md
§4): `initialize`, `server/discover`, `tools/list`, `resources/list`,
`resources/templates/list` and `prompts/list`. The driver hands it each successful result
with the request's params (`observe`), off the hot path; the capture answers with a
`SchemaVersionCreated` event when the server's description changed, else None. It is
sans-IO: the driver passes `now_ms`, which stamps the event.

* Pages of a `nextCursor` chain are merged: a request without `params.cursor` starts a
  chain, a request whose cursor is the `nextCursor` of a pending chain continues it, and
  the page without `nextCursor` completes it. Pages whose cursor no pending chain expects
  (a chain begun before the proxy started) are ignored. Several chains may be pending at
  once (two clients listing together); at most `MAX_PENDING_CHAINS` per method, and a
  chain longer than `MAX_CHAIN_PAGES` pages or `MAX_CHAIN_ITEMS` items is dropped.
* A complete listing is hashed: SHA-256 of the canonical JSON (`sort_keys`, compact
  separators, `ensure_ascii=False`) of the identifying fields of its items, sorted so that
  the server's ordering does not count: tools `name` + `inputSchema`, prompts `name` +
  `arguments`, resources `name` + `uri`, templates `name` + `uriTemplate`. Each item name
  also gets its own hash, so a version is diffed by name into `<kind>_added`,
  `<kind>_modified` and `<kind>_removed` changes. `initialize` and `server/discover` are
  hashed whole, minus the volatile `ttlMs`, `cacheScope` and `_meta` (except the server's
  identity, `_meta["io.modelcontextprotocol/serverInfo"]` in the 2026-07-28 era) and minus
  `protocolVersion`, which each client negotiates; a difference is one `updated` change.
  The first snapshot of a method is one `initial` change.
* The event's `payload` is the merged snapshot as canonical JSON: the full items (with
  descriptions and metadata, for display) under the list's key, or the cleaned result.
  `load()` seeds a stored payload at start-up, recomputing the item hashes from it, so an
  unchanged server creates no new version after a restart.
* `mark_stale()` takes a `notifications/*/list_changed`: the lists it names are stale, and
  pending chains of them are dropped, because pages fetched before the change cannot be
  merged with pages fetched after it. The next complete listing clears the flag.
* Results come from the network: a value of the wrong type is ignored, never an exception.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from mcpr_core.events import SchemaChange, SchemaVersionCreated

__all__ = [
    "CAPTURED_METHODS",
    "LIST_CHANGED",
    "MAX_CHAIN_ITEMS",
    "MAX_CHAIN_PAGES",
    "MAX_PENDING_CHAINS",
    "SchemaCapture",
    "SchemaSnapshot",
    "SchemaStatistics",
    "canonical_json",
]

#: Listing method -> (result key holding the items, change-type prefix, identifying fields).
_LISTS: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "tools/list": ("tools", "tool", ("name", "inputSchema")),
    "resources/list": ("resources", "resource", ("name", "uri")),
    "resources/templates/list": ("resourceTemplates", "resource_template", ("name", "uriTemplate")),
    "prompts/list": ("prompts", "prompt", ("name", "arguments")),
}
_WHOLE: Final = ("initialize", "server/discover")

#: Every method whose results are captured.
CAPTURED_METHODS: Final = frozenset((*_WHOLE, *_LISTS))

#: Notification -> the listings it makes stale.
LIST_CHANGED: Final[dict[str, tuple[str, ...]]] = {
    "notifications/tools/list_changed": ("tools/list",),
    "notifications/resources/list_changed": ("resources/list", "resources/templates/list"),
    "notifications/prompts/list_changed": ("prompts/list",),
}

#: Chains of one method being paged through at once.
MAX_PENDING_CHAINS: Final = 8
#: A chain with more pages than this is dropped (a server paging forever).
MAX_CHAIN_PAGES: Final = 1000
#: A chain with more items than this is dropped.
MAX_CHAIN_ITEMS: Final = 100_000

# A snapshot being versioned: (payload, schema hash, hash per item name or None).
_Built = tuple[str, str, dict[str, str] | None]

_VOLATILE: Final = frozenset(("_meta", "ttlMs", "cacheScope"))
_SERVER_INFO: Final = "io.modelcontextprotocol/serverInfo"


def canonical_json(value: Any) -> str:
    """The canonical JSON text hashed by the capture (sorted keys, compact, not ASCII-escaped)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    # "surrogatepass": JSON may carry a lone surrogate (`"\ud800"`), which UTF-8 cannot encode.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class SchemaSnapshot:
    """The last version of one method: its hash, its items' hashes (by name), staleness."""

    method: str
    schema_hash: str
    items: tuple[tuple[str, str], ...]
    stale: bool


@dataclass(frozen=True, slots=True)
class SchemaStatistics:
    """Counters of a capture since it was built."""

    observed: int
    versions: int
    unchanged: int
    ignored: int
    dropped_chains: int
    pending_chains: int
    stale: tuple[str, ...]


@dataclass(slots=True)
class _Last:
    schema_hash: str
    items: dict[str, str] | None  # None for initialize / server/discover


@dataclass(slots=True)
class _Chain:
    items: list[Any]
    pages: int


class SchemaCapture:
    """Versions the server description seen through one proxy (see the module docstring)."""

    __slots__ = ("_chains", "_counts", "_last", "_proxy", "_stale", "_upstream_url")

    def __init__(self, proxy: str, upstream_url: str) -> None:
        self._proxy = proxy
        self._upstream_url = upstream_url
        self._last: dict[str, _Last] = {}
        # Per method: the nextCursor each pending chain waits for -> the chain, oldest first.
        self._chains: dict[str, OrderedDict[str, _Chain]] = {}
        self._stale: set[str] = set()
        self._counts = dict.fromkeys(
            ("observed", "versions", "unchanged", "ignored", "dropped_chains"), 0
        )

    def __repr__(self) -> str:
        return (
            f"<SchemaCapture proxy={self._proxy!r} upstream={self._upstream_url!r}"
            f" methods={sorted(self._last)} stale={sorted(self._stale)}>"
        )

    @staticmethod
    def wants(method: str) -> bool:
        """Whether results of `method` are captured (so the driver copies only those)."""
        return method in CAPTURED_METHODS

    def observe(
        self, method: str, params: dict[str, Any] | None, result: dict[str, Any], now_ms: int
    ) -> SchemaVersionCreated | None:
        """Take one successful result; return the new version it completes, if any."""
        if method not in CAPTURED_METHODS:
            return None
        self._counts["observed"] += 1
        if not isinstance(result, dict):
            self._counts["ignored"] += 1
            return None
        built: _Built | None
        if method in _LISTS:
            items = self._page(method, params, result)
            if items is None:
                return None
            built = self._list_snapshot(method, items)
        else:
            built = _whole_snapshot(result)
        if built is None:
            self._counts["ignored"] += 1
            return None
        return self._version(method, built, now_ms)

    def mark_stale(self, notification: str) -> tuple[str, ...]:
        """Take a `notifications/*/list_changed`; return the listings it made stale."""
        methods = LIST_CHANGED.get(notification, ())
        for method in methods:
            self._stale.add(method)
            dropped = self._chains.pop(method, None)
            if dropped:
                self._counts["dropped_chains"] += len(dropped)
        return methods

    def load(self, method: str, payload: str, schema_hash: str) -> bool:
        """Seed the last stored snapshot of `method`; False when it cannot be used."""
        if method not in CAPTURED_METHODS:
            return False
        try:
            value = json.loads(payload)
        except (ValueError, RecursionError):
            return False
        if not isinstance(value, dict):
            return False
        items: dict[str, str] | None = None
        if method in _LISTS:
            listed = value.get(_LISTS[method][0])
            if not isinstance(listed, list):
                return False
            built = self._list_snapshot(method, listed)
            if built is None:
                return False
            items = built[2]
        self._last[method] = _Last(schema_hash=schema_hash, items=items)
        return True

    def snapshot(self, method: str) -> SchemaSnapshot | None:
        """The last version of `method`, or None before any."""
        last = self._last.get(method)
        if last is None:
            return None
        items = tuple(sorted(last.items.items())) if last.items is not None else ()
        return SchemaSnapshot(method, last.schema_hash, items, method in self._stale)

    def statistics(self) -> SchemaStatistics:
        """A snapshot of the counters."""
        pending = sum(len(chains) for chains in self._chains.values())
        return SchemaStatistics(
            pending_chains=pending, stale=tuple(sorted(self._stale)), **self._counts
        )

    # -- pagination ---------------------------------------------------------------------------

    def _page(
        self, method: str, params: dict[str, Any] | None, result: dict[str, Any]
    ) -> list[Any] | None:
        """Add a page to its chain; the merged items once the chain is complete, else None."""
        chains = self._chains.setdefault(method, OrderedDict())
        cursor = params.get("cursor") if isinstance(params, dict) else None
        if cursor is None:
            chain = _Chain(items=[], pages=0)
        else:
            found = chains.pop(cursor, None) if isinstance(cursor, str) else None
            if found is None:
                self._counts["ignored"] += 1  # a chain we did not see begin
                return None
            chain = found
        page = result.get(_LISTS[method][0])
        if not isinstance(page, list):
            self._counts["ignored"] += 1
            return None
        chain.items.extend(page)
        chain.pages += 1
        next_cursor = result.get("nextCursor")
        if not isinstance(next_cursor, str) or not next_cursor:
            return chain.items
        if chain.pages >= MAX_CHAIN_PAGES or len(chain.items) > MAX_CHAIN_ITEMS:
            self._counts["dropped_chains"] += 1
            return None
        if next_cursor in chains:  # two clients on the same page of an identical listing
            self._counts["dropped_chains"] += 1
        chains[next_cursor] = chain
        chains.move_to_end(next_cursor)
        while len(chains) > MAX_PENDING_CHAINS:
            chains.popitem(last=False)
            self._counts["dropped_chains"] += 1
        return None

    # -- hashing and diffing ------------------------------------------------------------------

    def _list_snapshot(
        self, method: str, items: list[Any]
    ) -> tuple[str, str, dict[str, str]] | None:
        """(payload, schema hash, hash per item name) of a merged listing."""
        key, _, fields = _LISTS[method]
        by_name: dict[str, list[str]] = {}
        identities: list[str] = []
        try:
            for item in items:
                if not isinstance(item, dict):
                    continue
                identity = canonical_json({f: item[f] for f in fields if f in item})
                identities.append(identity)
                name = item.get("name")
                label = name if isinstance(name, str) else canonical_json(name)
                by_name.setdefault(label, []).append(identity)
            payload = _payload({key: items})
        except (ValueError, TypeError, RecursionError):
            return None
        # An item's hash is that of its identity; a name listed twice (a faulty server)
        # hashes the sorted list of its identities, so either copy changing is noticed.
        hashes = {
            name: _sha256(ids[0]) if len(ids) == 1 else _sha256("[" + ",".join(sorted(ids)) + "]")
            for name, ids in by_name.items()
        }
        schema_hash = _sha256("[" + ",".join(sorted(identities)) + "]")
        return payload, schema_hash, hashes

    def _version(self, method: str, built: _Built, now_ms: int) -> SchemaVersionCreated | None:
        payload, schema_hash, items = built
        self._stale.discard(method)
        last = self._last.get(method)
        if last is not None and last.schema_hash == schema_hash:
            self._counts["unchanged"] += 1
            return None
        self._last[method] = _Last(schema_hash=schema_hash, items=items)
        self._counts["versions"] += 1
        return SchemaVersionCreated(
            ts=now_ms,
            proxy=self._proxy,
            upstream_url=self._upstream_url,
            method=method,
            payload=payload,
            schema_hash=schema_hash,
            changes=_diff(method, last, schema_hash, items),
        )


def _whole_snapshot(result: dict[str, Any]) -> tuple[str, str, None] | None:
    """(payload, hash, None) of an `initialize` / `server/discover` result."""
    cleaned = {k: v for k, v in result.items() if k not in _VOLATILE}
    meta = result.get("_meta")
    if isinstance(meta, dict) and _SERVER_INFO in meta:
        cleaned["_meta"] = {_SERVER_INFO: meta[_SERVER_INFO]}
    # `protocolVersion` is negotiated per client, not a property of the server: two clients
    # asking for different revisions must not make the schema flip between two versions.
    identity = {k: v for k, v in cleaned.items() if k != "protocolVersion"}
    try:
        text = canonical_json(identity)
        payload = _payload(cleaned)
    except (ValueError, TypeError, RecursionError):
        return None
    return payload, _sha256(text), None


def _payload(value: Any) -> str:
    """Canonical JSON, ASCII-escaped only if it holds a lone surrogate that UTF-8 cannot store."""
    text = canonical_json(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text


def _diff(
    method: str, last: _Last | None, schema_hash: str, items: dict[str, str] | None
) -> tuple[SchemaChange, ...]:
    if last is None:
        return (SchemaChange("initial", None, None, schema_hash),)
    changes: list[SchemaChange] = []
    if items is not None and last.items is not None:
        prefix = _LISTS[method][1]
        for name in sorted(last.items.keys() | items.keys()):
            old, new = last.items.get(name), items.get(name)
            if old == new:
                continue
            kind = "added" if old is None else "removed" if new is None else "modified"
            changes.append(SchemaChange(f"{prefix}_{kind}", name, old, new))
    if not changes:  # a whole-result method, or a hash stored by another mcpr version
        changes.append(SchemaChange("updated", None, last.schema_hash, schema_hash))
    return tuple(changes)
