"""Widget CSP rewriting: production-correct sandbox metadata for ChatGPT and MCP Apps hosts.

Theory of operation
-------------------
Hosts render tool widgets in sandboxed iframes whose Content-Security-Policy they build from
metadata the MCP server returns. A server written against localhost declares localhost
domains; `CspRewriter` rewrites that metadata at the edge (PRODUCT.md §3). It implements the
`mcpr_core.pipeline.ResultRewriter` hook: the pipeline hands it a parsed JSON-RPC `result`
and forwards the original bytes when `rewrite` answers None.

Where (PRODUCT.md §3): `tools/list` each `tools[i]._meta`; `tools/call` the `result._meta`;
`resources/list` each `resources[i]` (match key `uri`); `resources/templates/list` each
`resourceTemplates[i]` (match key `uriTemplate`); `resources/read` each `contents[i]` (match
key `uri`; PROTOCOL.md §7 decision 4: every item, not only the first). "Only when the result
already carries widget metadata (an OpenAI or `ui` key) or is a `ui://` resource." A tool's
widget URI, for `[[csp.widget]]` globs, is `_meta.ui.resourceUri`, the deprecated flat
`ui/resourceUri`, or `openai/outputTemplate` (PROTOCOL.md §6 item 6); an item with none is
matched as the empty string, so only rules such as `match = "*"` reach it.

Per directive (the table `_DIRECTIVES`):

* connect, resource, frame are always written. Start from the union of both shapes
  (`_meta.ui.csp` first, then `openai/widgetCSP`) in `extend` mode, minus entries naming
  localhost, a loopback address or the upstream host; from empty in `replace` mode. Append
  the configured domains; apply matching widget rules in file order (replace = set exactly,
  extend = append; a rule without a mode extends); put the public origin first for connect
  and resource, never for frame; deduplicate keeping the first occurrence.
* base-uri (`ui.csp.baseUriDomains` only) and redirect (`openai/widgetCSP.redirect_domains`
  only) pass through untouched unless a matching widget rule names them.

Both shapes are written ("both always written, other keys preserved"), and
`openai/widgetDomain` is the public origin when one is known. `_meta.ui.domain` follows
PROTOCOL.md §7 decision 3: a matching rule's `ui_domain`, else `[csp] ui_domain`, else per
host: Claude gets `<first 32 hex of sha256(public URL)>.claudemcpcontent.com` (only with a
configured public URL: the hash is of the exact URL Claude connects to, which is never
guessed), ChatGPT gets the public origin, other clients keep what the upstream sent. Such a
per-host answer varies with the client, so (decision 2) the result's `cacheScope: "public"`
becomes `"private"`, for every client, exactly as a `Vary` header would.

Rules of this module:

* Copy on write. New dicts and lists are built only along the path that changes; everything
  else, above all the `text`/`blob` of resource contents, is shared with the input by
  reference and never copied, re-encoded or mutated.
* Bodies come from the network: any JSON value may sit anywhere. A non-object where an
  object is expected reads as absent; a non-list domain list reads as empty; entries that
  are not strings, are empty, or hold whitespace, `,` or `;` (which would splice another
  directive into the policy) are dropped; configured domains are held to the same standard.
  Nothing here raises for JSON input.
* The rewrite is idempotent: rewriting its own output answers None. That is why an entry
  the extend filter would drop is kept where it stands when the configuration adds it anyway.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Final

from mcpr_core.config import CspConfig, CspDirective, WidgetRule
from mcpr_core.mcp import Method, Platform, client_platform
from mcpr_core.routing import UpstreamURL, parse_upstream_url

__all__ = ["CspRewriter", "claude_ui_domain"]

_UI: Final = "ui"
_CSP: Final = "csp"
_OPENAI_CSP: Final = "openai/widgetCSP"
_OPENAI_DOMAIN: Final = "openai/widgetDomain"
_CLAUDE_SUFFIX: Final = ".claudemcpcontent.com"
# Whitespace (Unicode too), control characters and the separators of a policy.
_DIRTY: Final = re.compile(r"[\s\x00-\x1f\x7f,;]")

#: Result key holding the item list, and each item's match key (None: the item is a tool,
#: whose widget URI lives in its `_meta`). `tools/call` is the result itself.
_ITEMS: Final[dict[str, tuple[str, str | None]]] = {
    Method.TOOLS_LIST: ("tools", None),
    Method.RESOURCES_LIST: ("resources", "uri"),
    Method.RESOURCES_TEMPLATES_LIST: ("resourceTemplates", "uriTemplate"),
    Method.RESOURCES_READ: ("contents", "uri"),
}
_METHODS: Final = frozenset({*_ITEMS, Method.TOOLS_CALL})


@dataclass(frozen=True, slots=True)
class _Directive:
    """One CSP directive: its keys in both shapes and how it is treated."""

    field: str  # WidgetRule field (and CspConfig field when `always`)
    ui_key: str | None  # key in `_meta.ui.csp`
    openai_key: str | None  # key in `_meta["openai/widgetCSP"]`
    always: bool  # written on every widget; otherwise only when a rule names it
    origin_first: bool  # the public origin goes first


_DIRECTIVES: Final = (
    _Directive("connect_domains", "connectDomains", "connect_domains", True, True),
    _Directive("resource_domains", "resourceDomains", "resource_domains", True, True),
    _Directive("frame_domains", "frameDomains", "frame_domains", True, False),
    _Directive("base_uri_domains", "baseUriDomains", None, False, False),
    _Directive("redirect_domains", None, "redirect_domains", False, False),
)

# One rule's effect on one directive: (domains, replace), or None when it says nothing.
_Op = tuple[tuple[str, ...], bool] | None


@dataclass(frozen=True, slots=True)
class _Rule:
    """A `[[csp.widget]]` rule, flattened to one op per entry of `_DIRECTIVES`."""

    match: str
    ops: tuple[_Op, ...]
    ui_domain: str | None

    @classmethod
    def from_config(cls, rule: WidgetRule) -> _Rule:
        ops: list[_Op] = []
        for d in _DIRECTIVES:
            domains: tuple[str, ...] | None = getattr(rule, d.field)
            mode = getattr(rule, d.field + "_mode")
            ops.append(None if domains is None else (_clean(domains), mode == "replace"))
        return cls(rule.match, tuple(ops), rule.ui_domain)


def claude_ui_domain(public_url: str) -> str:
    """Claude's sandbox origin for a server URL: first 32 hex of its sha256, then the suffix."""
    return hashlib.sha256(public_url.encode("utf-8")).hexdigest()[:32] + _CLAUDE_SUFFIX


class CspRewriter:
    """Rewrites widget CSP metadata in MCP results (a `pipeline.ResultRewriter`).

    Built once per configuration (a reload builds a new one) and stateless afterwards, so
    one instance serves every exchange. `public_url` is the URL clients connect to; the
    public origin is `https://<[csp] domain>` when configured, else `public_url`'s origin,
    else unknown (then no origin is prepended and `openai/widgetDomain` is left alone).
    Raises ValueError for a `public_url` that is not an http(s) URL.
    """

    __slots__ = ("_claude_domain", "_config", "_directives", "_origin", "_rules", "_upstream")

    def __init__(self, config: CspConfig, *, upstream: UpstreamURL, public_url: str | None) -> None:
        self._config = config
        self._upstream = _normal_host(upstream.host)
        self._origin: str | None
        if config.domain:
            self._origin = "https://" + _strip_scheme(config.domain)
        elif public_url:
            self._origin = parse_upstream_url(public_url).origin
        else:
            self._origin = None
        self._claude_domain = claude_ui_domain(public_url) if public_url else None
        self._directives: tuple[CspDirective | None, ...] = tuple(
            _clean_directive(getattr(config, d.field)) if d.always else None for d in _DIRECTIVES
        )
        self._rules = tuple(_Rule.from_config(r) for r in config.widgets)

    def __repr__(self) -> str:
        return f"<CspRewriter origin={self._origin!r} rules={len(self._rules)}>"

    def wants(self, method: str, client_name: str | None) -> bool:
        """Whether results of `method` may carry widget metadata (for any client)."""
        return method in _METHODS

    def rewrite(
        self, method: str, result: dict[str, Any], client_name: str | None
    ) -> dict[str, Any] | None:
        """Return the rewritten result, or None when nothing changed."""
        if not isinstance(result, dict) or method not in _METHODS:
            return None
        platform = client_platform(client_name)
        varies = False
        new: dict[str, Any] | None = None
        if method == Method.TOOLS_CALL:
            meta, varies = self._rewrite_item(result, None, platform)
            if meta is not None:
                new = {**result, "_meta": meta}
        else:
            key, match_key = _ITEMS[method]
            items = result.get(key)
            if isinstance(items, list):
                new_items: list[Any] | None = None
                for index, item in enumerate(items):
                    meta, item_varies = self._rewrite_item(item, match_key, platform)
                    varies = varies or item_varies
                    if meta is not None:
                        if new_items is None:
                            new_items = list(items)
                        new_items[index] = {**item, "_meta": meta}
                if new_items is not None:
                    new = {**result, key: new_items}
        # PROTOCOL.md §7 decision 2: an answer that differs per client must not be shared.
        if varies and result.get("cacheScope") == "public":
            new = {**(new if new is not None else result), "cacheScope": "private"}
        return new

    # -- one item ----------------------------------------------------------------------------

    def _rewrite_item(
        self, item: object, match_key: str | None, platform: Platform
    ) -> tuple[dict[str, Any] | None, bool]:
        """The item's new `_meta` (None: unchanged or no widget), and whether it varies."""
        if not isinstance(item, dict):
            return None, False
        meta = _obj(item.get("_meta"))
        if match_key is None:
            if not _has_widget_keys(meta):
                return None, False
            uri = _tool_widget_uri(meta)
        else:
            raw = item.get(match_key)
            uri = raw if isinstance(raw, str) else ""
            if not (_has_widget_keys(meta) or uri[:5].lower() == "ui://"):
                return None, False
        return self._rewrite_meta(meta, uri, platform)

    def _rewrite_meta(
        self, meta: dict[str, Any] | None, uri: str, platform: Platform
    ) -> tuple[dict[str, Any] | None, bool]:
        rules = [r for r in self._rules if _glob_match(r.match, uri)]
        ui = _obj(meta.get(_UI)) if meta else None
        ui_csp = _obj(ui.get(_CSP)) if ui else None
        openai_csp = _obj(meta.get(_OPENAI_CSP)) if meta else None
        new_ui_csp = dict(ui_csp) if ui_csp else {}
        new_openai_csp = dict(openai_csp) if openai_csp else {}
        for index, directive in enumerate(_DIRECTIVES):
            ops = [op for op in (r.ops[index] for r in rules) if op is not None]
            domains = self._domains(index, directive, ops, ui_csp, openai_csp)
            if domains is None:
                continue
            if directive.ui_key:
                new_ui_csp[directive.ui_key] = domains
            if directive.openai_key:
                new_openai_csp[directive.openai_key] = list(domains)  # no aliasing
        new_ui = dict(ui) if ui else {}
        new_ui[_CSP] = new_ui_csp
        ui_domain, varies = self._ui_domain(rules, platform)
        if ui_domain is not None:
            new_ui["domain"] = ui_domain
        new_meta = dict(meta) if meta else {}
        new_meta[_UI] = new_ui
        new_meta[_OPENAI_CSP] = new_openai_csp
        if self._origin is not None:
            new_meta[_OPENAI_DOMAIN] = self._origin
        return (None if new_meta == meta else new_meta), varies

    def _domains(
        self,
        index: int,
        directive: _Directive,
        ops: list[tuple[tuple[str, ...], bool]],
        ui_csp: dict[str, Any] | None,
        openai_csp: dict[str, Any] | None,
    ) -> list[str] | None:
        """One directive's new list, or None to leave a pass-through directive alone."""
        upstream = _sources(ui_csp, directive.ui_key) + _sources(openai_csp, directive.openai_key)
        base = self._directives[index]
        if base is None and not ops:
            return None  # base-uri and redirect pass through unless a rule names them
        # What the configuration adds stays where the upstream had it (idempotence).
        origin = (self._origin,) if directive.origin_first and self._origin else ()
        added = {*origin, *(base.domains if base else ()), *(d for op in ops for d in op[0])}
        if base is None:
            domains = [d for d in upstream if _is_clean(d)]
        elif base.mode == "extend":
            domains = [
                d for d in upstream if _is_clean(d) and (d in added or not self._is_local(d))
            ]
            domains.extend(base.domains)
        else:
            domains = list(base.domains)
        for rule_domains, replace in ops:
            if replace:
                domains = list(rule_domains)
            else:
                domains.extend(rule_domains)
        if directive.origin_first and self._origin is not None:
            domains.insert(0, self._origin)
        return list(dict.fromkeys(domains))

    def _ui_domain(self, rules: list[_Rule], platform: Platform) -> tuple[str | None, bool]:
        """The `ui.domain` to write (None: keep the upstream's) and whether it is per host."""
        for rule in reversed(rules):
            if rule.ui_domain is not None:
                return rule.ui_domain, False
        if self._config.ui_domain is not None:
            return self._config.ui_domain, False
        if self._origin is None and self._claude_domain is None:
            return None, False  # nothing to compute from: every client gets the same
        if platform is Platform.CLAUDE:
            return self._claude_domain, True
        if platform is Platform.CHATGPT:
            return self._origin, True
        return None, True

    def _is_local(self, source: str) -> bool:
        """Whether a CSP source names localhost, a loopback address or the upstream host."""
        host = _source_host(source)
        if not host:
            return False
        if host == self._upstream or host == "localhost" or host.endswith(".localhost"):
            return True
        if not (host[0].isdigit() or ":" in host):
            return False  # a name, not an IP literal: skip the (costly) failed parse
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


# --- helpers ---------------------------------------------------------------------------------


def _obj(value: object) -> dict[str, Any] | None:
    """A JSON object as a dict; anything else reads as absent."""
    return value if isinstance(value, dict) else None


def _has_widget_keys(meta: dict[str, Any] | None) -> bool:
    """Whether a `_meta` carries widget metadata: a `ui`, `ui/…` or `openai/…` key."""
    if not meta:
        return False
    return any(isinstance(k, str) and (k == _UI or k.startswith(("ui/", "openai/"))) for k in meta)


def _tool_widget_uri(meta: dict[str, Any] | None) -> str:
    """The widget URI a tool (or tool result) points to, or "" when it names none."""
    if not meta:
        return ""
    ui = _obj(meta.get(_UI))
    for value in (ui.get("resourceUri") if ui else None, meta.get("ui/resourceUri")):
        if isinstance(value, str):
            return value
    value = meta.get("openai/outputTemplate")
    return value if isinstance(value, str) else ""


def _sources(csp: dict[str, Any] | None, key: str | None) -> list[str]:
    """The string entries of one domain list; a malformed list reads as empty."""
    if csp is None or key is None:
        return []
    value = csp.get(key)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str)]


def _is_clean(source: str) -> bool:
    """Not empty, no whitespace or separators: an entry must not splice in another directive."""
    return bool(source) and _DIRTY.search(source) is None


def _clean(domains: tuple[str, ...]) -> tuple[str, ...]:
    """Configured domains held to the upstream's standard (`load_config` already is)."""
    return tuple(d for d in domains if _is_clean(d))


def _clean_directive(directive: CspDirective) -> CspDirective:
    return CspDirective(_clean(directive.domains), directive.mode)


def _source_host(source: str) -> str:
    """The host a CSP source expression names ("" for keywords such as `'self'`)."""
    rest = source.partition("://")[2] if "://" in source else source
    for stop in "/?#":
        rest = rest.partition(stop)[0]
    rest = rest.rpartition("@")[2]
    if rest.startswith("["):
        return _normal_host(rest[1:].partition("]")[0])
    return _normal_host(rest.partition(":")[0])


def _normal_host(host: str) -> str:
    return host.lower().rstrip(".")


def _strip_scheme(domain: str) -> str:
    for scheme in ("https://", "http://"):
        if domain.lower().startswith(scheme):
            domain = domain[len(scheme) :]
    return domain.rstrip("/")


def _glob_match(pattern: str, text: str) -> bool:
    """Whole-string, case-sensitive glob: `*` any run (also empty), `?` one character.

    Every other character is literal (fnmatch would read `[...]` as a set). Greedy with
    backtracking to the last `*` only, so the cost is O(len(pattern) * len(text)) at worst.
    """
    p = t = 0
    star = -1
    mark = 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)
