"""Tests of mcpr_core.csp: the widget CSP rewrite of PRODUCT.md §3, rule by rule, and a fixture."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core.config import CspConfig, CspDirective, WidgetRule
from mcpr_core.csp import CspRewriter, claude_ui_domain
from mcpr_core.routing import UpstreamURL, parse_upstream_url
from tests.fixtures import FIXTURES

UPSTREAM = parse_upstream_url("http://127.0.0.1:8000/mcp")
DOMAIN = "widgets.example.com"
ORIGIN = "https://widgets.example.com"
PUBLIC_URL = "https://mcp.example.com/mcp"
WIDGET = "ui://map/app.html"
METHODS = ("tools/list", "tools/call", "resources/list", "resources/templates/list")
ALL_METHODS = (*METHODS, "resources/read")
CLAUDE = "claude-ai"
CHATGPT = "openai-mcp"

Json = Any


def make(
    config: CspConfig | None = None,
    *,
    public_url: str | None = None,
    upstream: UpstreamURL = UPSTREAM,
) -> CspRewriter:
    return CspRewriter(config or CspConfig(), upstream=upstream, public_url=public_url)


def read(meta: Json = None, *, uri: str = WIDGET, **extra: Json) -> dict[str, Json]:
    """A resources/read result with one HTML content item carrying `meta` (omitted if None)."""
    item: dict[str, Json] = {"uri": uri, "mimeType": "text/html;profile=mcp-app", "text": "<p>"}
    if meta is not None:
        item["_meta"] = meta
    return {"contents": [item], **extra}


def shapes(ui_csp: Json = None, openai_csp: Json = None, **more: Json) -> dict[str, Json]:
    """A `_meta` with the MCP Apps and/or OpenAI CSP shape."""
    meta: dict[str, Json] = {}
    if ui_csp is not None:
        meta["ui"] = {"csp": ui_csp}
    if openai_csp is not None:
        meta["openai/widgetCSP"] = openai_csp
    meta.update(more)
    return meta


def rewrite_once(
    rw: CspRewriter, method: str, result: dict[str, Json], client: str | None = None
) -> dict[str, Json]:
    """Rewrite, check the input was left alone and the output is a fixed point, return it."""
    before = copy.deepcopy(result)
    out = rw.rewrite(method, result, client)
    assert result == before
    assert out is not None
    assert rw.rewrite(method, out, client) is None
    return out


def meta_of(result: dict[str, Json], index: int = 0) -> dict[str, Json]:
    meta: dict[str, Json] = result["contents"][index]["_meta"]
    return meta


def directive(meta: dict[str, Json], camel: str, snake: str) -> list[str]:
    """One directive's list, checked to be equal (and not the same list) in both shapes."""
    ui: list[str] = meta["ui"]["csp"][camel]
    openai: list[str] = meta["openai/widgetCSP"][snake]
    assert ui == openai
    assert ui is not openai
    return ui


def connect(meta: dict[str, Json]) -> list[str]:
    return directive(meta, "connectDomains", "connect_domains")


def resource(meta: dict[str, Json]) -> list[str]:
    return directive(meta, "resourceDomains", "resource_domains")


def frame(meta: dict[str, Json]) -> list[str]:
    return directive(meta, "frameDomains", "frame_domains")


# --- which methods, which items -------------------------------------------------------------


@pytest.mark.parametrize("method", ALL_METHODS)
def test_wants_the_five_widget_methods(method: str) -> None:
    """Results of the five methods that can carry widgets are asked for, for any client."""
    rw = make()
    assert rw.wants(method, None)
    assert rw.wants(method, CLAUDE)


@pytest.mark.parametrize(
    "method", ["initialize", "prompts/get", "ping", "tools/List", "resources/subscribe", ""]
)
def test_wants_nothing_else(method: str) -> None:
    """Other methods are never buffered for a rewrite, and their results are left alone."""
    rw = make(CspConfig(domain=DOMAIN))
    assert not rw.wants(method, CLAUDE)
    assert rw.rewrite(method, read(shapes({"connectDomains": []})), CLAUDE) is None


TOOL_UI = {"name": "map", "_meta": {"ui": {"resourceUri": WIDGET}}}
TOOL_FLAT = {"name": "map", "_meta": {"ui/resourceUri": WIDGET}}
TOOL_OPENAI = {"name": "map", "_meta": {"openai/outputTemplate": WIDGET}}
PLAIN_TOOL = {"name": "echo", "inputSchema": {"type": "object"}}

# (method, result, path to the rewritten `_meta`)
LOCATIONS: dict[str, tuple[str, dict[str, Json], tuple[str | int, ...]]] = {
    "tool ui.resourceUri": ("tools/list", {"tools": [PLAIN_TOOL, TOOL_UI]}, ("tools", 1)),
    "tool flat ui/resourceUri": ("tools/list", {"tools": [TOOL_FLAT]}, ("tools", 0)),
    "tool openai/outputTemplate": ("tools/list", {"tools": [TOOL_OPENAI]}, ("tools", 0)),
    "tool call result": (
        "tools/call",
        {"content": [], "_meta": {"openai/widgetSessionId": "s1"}},
        (),
    ),
    "ui:// resource without _meta": (
        "resources/list",
        {"resources": [{"uri": WIDGET, "name": "map"}]},
        ("resources", 0),
    ),
    "non-ui resource with _meta.ui": (
        "resources/list",
        {"resources": [{"uri": "https://x.example/w", "_meta": {"ui": {}}}]},
        ("resources", 0),
    ),
    "ui:// template": (
        "resources/templates/list",
        {"resourceTemplates": [{"uriTemplate": "ui://map/{id}.html", "name": "t"}]},
        ("resourceTemplates", 0),
    ),
    "read content": ("resources/read", read(), ("contents", 0)),
    "read: second content item too": (
        "resources/read",
        {"contents": [*read()["contents"], {"uri": "ui://map/b.html", "blob": "AAAA"}]},
        ("contents", 1),
    ),
    "upper-case UI:// scheme": (
        "resources/read",
        read(uri="UI://map/app.html"),
        ("contents", 0),
    ),
}


@pytest.mark.parametrize("case", LOCATIONS)
def test_rewrites_each_location(case: str) -> None:
    """Each place PRODUCT.md §3 names gets both shapes, the origin first and the widget domain."""
    method, result, path = LOCATIONS[case]
    out = rewrite_once(make(CspConfig(domain=DOMAIN)), method, result)
    node: Json = out
    for step in path:
        node = node[step]
    meta = node["_meta"]
    assert connect(meta) == [ORIGIN]
    assert resource(meta) == [ORIGIN]
    assert frame(meta) == []
    assert meta["openai/widgetDomain"] == ORIGIN


NO_WIDGET: dict[str, tuple[str, Json]] = {
    "tool without _meta": ("tools/list", {"tools": [PLAIN_TOOL]}),
    "tool with other _meta": ("tools/list", {"tools": [{"name": "t", "_meta": {"x/y": 1}}]}),
    "tool with non-dict _meta": ("tools/list", {"tools": [{"name": "t", "_meta": ["ui"]}]}),
    "tool naming ui:// only in text": ("tools/list", {"tools": [{"description": WIDGET}]}),
    "tools not a list": ("tools/list", {"tools": {"0": TOOL_UI}}),
    "tools missing": ("tools/list", {"nextCursor": "c"}),
    "tool items not objects": ("tools/list", {"tools": [None, 1, "ui://x", []]}),
    "call without _meta": ("tools/call", {"content": [{"type": "text", "text": "hi"}]}),
    "call with other _meta": ("tools/call", {"content": [], "_meta": {"progress": 1}}),
    "https resource": ("resources/list", {"resources": [{"uri": "https://x.example/a"}]}),
    "uri not a string": ("resources/list", {"resources": [{"uri": ["ui://x"]}]}),
    "file template": ("resources/templates/list", {"resourceTemplates": [{"uriTemplate": "f"}]}),
    "template keyed by uri": (
        "resources/templates/list",
        {"resourceTemplates": [{"uri": WIDGET}]},
    ),
    "plain content": (
        "resources/read",
        {"contents": [{"uri": "file:///a.txt", "text": "a", "_meta": {"size": 1}}]},
    ),
    "empty result": ("resources/read", {}),
}


@pytest.mark.parametrize("case", NO_WIDGET)
@pytest.mark.parametrize("client", [None, CLAUDE, CHATGPT])
def test_result_without_widget_metadata_is_untouched(case: str, client: str | None) -> None:
    """A result with no widget metadata answers None, so the proxy forwards its bytes unchanged."""
    method, result = NO_WIDGET[case]
    config = CspConfig(domain=DOMAIN, ui_domain="x.example", widgets=(WidgetRule("*", ("a",)),))
    rw = make(config, public_url=PUBLIC_URL)
    assert rw.rewrite(method, {**result, "cacheScope": "public"}, client) is None


# --- the directive rules ---------------------------------------------------------------------

LOCAL = [
    "http://localhost:5173",
    "ws://localhost:5173",
    "localhost:3000",
    "LOCALHOST",
    "http://127.0.0.1:8000",
    "http://127.0.0.1",
    "http://[::1]:8000",
    "[::1]",
    "https://*.localhost",
    "http://app.localhost:3000",
    "http://127.0.0.2:9000",
    "http://user@localhost/",
]
KEPT = ["'self'", "https://api.example.com", "https://*.openstreetmap.org", "wss://ws.example.com"]
EXTRA = ("https://extra.example.com",)

# (config, ui.csp connectDomains, openai connect_domains, expected connect list)
CONNECT_CASES: dict[str, tuple[CspConfig, Json, Json, list[str]]] = {
    "extend drops local entries": (CspConfig(), LOCAL + KEPT, None, KEPT),
    "origin first, configured last": (
        CspConfig(domain=DOMAIN, connect_domains=CspDirective(EXTRA)),
        ["https://api.example.com"],
        None,
        [ORIGIN, "https://api.example.com", *EXTRA],
    ),
    "union of both shapes, ui first": (
        CspConfig(),
        ["https://a.example", "https://b.example"],
        ["https://b.example", "https://c.example"],
        ["https://a.example", "https://b.example", "https://c.example"],
    ),
    "openai shape alone": (CspConfig(), None, ["https://c.example"], ["https://c.example"]),
    "dedup keeps the first occurrence": (
        CspConfig(domain=DOMAIN, connect_domains=CspDirective(("https://a.example", ORIGIN))),
        ["https://a.example", ORIGIN, "https://a.example"],
        [ORIGIN],
        [ORIGIN, "https://a.example"],
    ),
    "replace ignores the upstream": (
        CspConfig(domain=DOMAIN, connect_domains=CspDirective(EXTRA, "replace")),
        KEPT,
        KEPT,
        [ORIGIN, *EXTRA],
    ),
    "replace with nothing configured": (
        CspConfig(connect_domains=CspDirective(mode="replace")),
        KEPT,
        None,
        [],
    ),
    "no origin known, none prepended": (
        CspConfig(),
        ["https://a.example"],
        None,
        ["https://a.example"],
    ),
    "configured local entry stays where the upstream had it": (
        CspConfig(connect_domains=CspDirective(("http://localhost:5173", "https://z.example"))),
        ["https://a.example", "http://localhost:5173", "http://localhost:9999"],
        None,
        ["https://a.example", "http://localhost:5173", "https://z.example"],
    ),
    "malformed entries are dropped": (
        CspConfig(),
        ["https://a.example", 1, None, "", ["x"], {"d": 1}, "https://b.example; script-src *"],
        ["https://c.example", "https://d .example", "https://e.example,https://f.example"],
        ["https://a.example", "https://c.example"],
    ),
    "a non-list reads as empty": (CspConfig(), "https://a.example", {"0": "x"}, []),
}


@pytest.mark.parametrize("case", CONNECT_CASES)
def test_connect_directive(case: str) -> None:
    """connectDomains / connect_domains follow PRODUCT.md §3 in both shapes."""
    config, ui_list, openai_list, expected = CONNECT_CASES[case]
    ui_csp = None if ui_list is None else {"connectDomains": ui_list}
    openai_csp = None if openai_list is None else {"connect_domains": openai_list}
    out = rewrite_once(
        make(config), "resources/read", read(shapes(ui_csp, openai_csp) or {"ui": {}})
    )
    assert connect(meta_of(out)) == expected


def test_upstream_host_is_dropped_in_extend_mode() -> None:
    """Entries naming the upstream host are dropped, whatever their scheme or port."""
    upstream = parse_upstream_url("http://devbox.internal:9000/mcp")
    ui_csp = {
        "connectDomains": ["https://devbox.internal", "wss://DEVBOX.internal:9000/ws"],
        "resourceDomains": ["http://devbox.internal:9000", "https://devbox.internal.example"],
    }
    out = rewrite_once(make(upstream=upstream), "resources/read", read(shapes(ui_csp)))
    assert connect(meta_of(out)) == []
    assert resource(meta_of(out)) == ["https://devbox.internal.example"]


def test_ipv6_upstream_host_is_dropped() -> None:
    """An IPv6 upstream host is recognised with its brackets."""
    upstream = parse_upstream_url("http://[2001:db8::5]:8000/mcp")
    ui_csp = {"connectDomains": ["http://[2001:db8::5]:8000", "http://[2001:db8::6]"]}
    out = rewrite_once(make(upstream=upstream), "resources/read", read(shapes(ui_csp)))
    assert connect(meta_of(out)) == ["http://[2001:db8::6]"]


RESOURCE_UP = ["http://localhost:5173", "https://cdn.example.com"]
FRAME_UP = ["https://www.youtube.com", "http://localhost:5173"]

# (config, expected resource list, expected frame list)
MODE_CASES: dict[str, tuple[CspConfig, list[str], list[str]]] = {
    "defaults: resource extend, frame replace": (
        CspConfig(domain=DOMAIN),
        [ORIGIN, "https://cdn.example.com"],
        [],
    ),
    "resource replace": (
        CspConfig(domain=DOMAIN, resource_domains=CspDirective(EXTRA, "replace")),
        [ORIGIN, *EXTRA],
        [],
    ),
    "frame replace with domains, never the origin": (
        CspConfig(domain=DOMAIN, frame_domains=CspDirective(EXTRA, "replace")),
        [ORIGIN, "https://cdn.example.com"],
        [*EXTRA],
    ),
    "frame extend drops local, keeps the rest": (
        CspConfig(domain=DOMAIN, frame_domains=CspDirective(EXTRA, "extend")),
        [ORIGIN, "https://cdn.example.com"],
        ["https://www.youtube.com", *EXTRA],
    ),
}


@pytest.mark.parametrize("case", MODE_CASES)
def test_resource_and_frame_modes(case: str) -> None:
    """resourceDomains and frameDomains follow their modes; frames never get the origin."""
    config, expected_resource, expected_frame = MODE_CASES[case]
    ui_csp = {"resourceDomains": RESOURCE_UP, "frameDomains": FRAME_UP}
    out = rewrite_once(make(config), "resources/read", read(shapes(ui_csp)))
    assert resource(meta_of(out)) == expected_resource
    assert frame(meta_of(out)) == expected_frame


def test_unknown_keys_are_preserved() -> None:
    """Keys mcpr does not manage survive in `_meta`, in `ui`, and inside both CSP shapes."""
    meta: dict[str, Json] = {
        "ui": {
            "resourceUri": WIDGET,
            "permissions": {"camera": {}},
            "prefersBorder": True,
            "csp": {"baseUriDomains": ["https://base.example"], "future": [1]},
        },
        "openai/widgetCSP": {"redirect_domains": ["https://go.example"], "other": "x"},
        "openai/widgetDescription": "A map",
        "openai/widgetPrefersBorder": False,
        "vendor/thing": {"deep": [1, 2]},
    }
    out = rewrite_once(make(CspConfig(domain=DOMAIN)), "resources/read", read(meta))
    new = meta_of(out)
    assert new["ui"]["permissions"] is meta["ui"]["permissions"]
    assert new["ui"]["prefersBorder"] is True
    assert new["ui"]["resourceUri"] == WIDGET
    assert new["ui"]["csp"]["baseUriDomains"] is meta["ui"]["csp"]["baseUriDomains"]
    assert new["ui"]["csp"]["future"] == [1]
    assert new["openai/widgetCSP"]["redirect_domains"] == ["https://go.example"]
    assert new["openai/widgetCSP"]["other"] == "x"
    assert new["openai/widgetDescription"] == "A map"
    assert new["openai/widgetPrefersBorder"] is False
    assert new["vendor/thing"] is meta["vendor/thing"]
    assert "redirect_domains" not in new["ui"]["csp"]
    assert "baseUriDomains" not in new["openai/widgetCSP"]


def test_non_object_containers_are_replaced() -> None:
    """A `ui`, `ui.csp` or `openai/widgetCSP` that is not an object is rebuilt, not trusted."""
    for meta in (
        {"ui": "x"},
        {"ui": None, "openai/widgetCSP": ["https://a.example"]},
        {"ui": {"csp": "connect-src *"}},
        {"ui": {"csp": None}, "openai/widgetCSP": 3},
    ):
        out = rewrite_once(make(CspConfig(domain=DOMAIN)), "resources/read", read(meta))
        assert connect(meta_of(out)) == [ORIGIN]


@pytest.mark.parametrize("meta", [None, 0, "x", [], [{"ui": {}}], True])
def test_non_object_meta_on_a_ui_resource(meta: Json) -> None:
    """A `ui://` resource whose `_meta` is not an object gets a fresh one."""
    result = {"contents": [{"uri": WIDGET, "text": "<p>", "_meta": meta}]}
    out = rewrite_once(make(CspConfig(domain=DOMAIN)), "resources/read", result)
    assert connect(meta_of(out)) == [ORIGIN]


def test_shapes_are_written_even_without_config() -> None:
    """With no `[csp]` settings the OpenAI twin of an MCP Apps CSP is still written."""
    ui_csp = {"connectDomains": ["https://a.example"], "resourceDomains": ["https://b.example"]}
    out = rewrite_once(make(), "resources/read", read(shapes(ui_csp)))
    assert meta_of(out)["openai/widgetCSP"] == {
        "connect_domains": ["https://a.example"],
        "resource_domains": ["https://b.example"],
        "frame_domains": [],
    }
    assert "openai/widgetDomain" not in meta_of(out)


def test_widget_domain_needs_a_public_origin() -> None:
    """`openai/widgetDomain` is the public origin when known and the upstream's otherwise."""
    meta = shapes({}, **{"openai/widgetDomain": "http://localhost:5173"})
    kept = rewrite_once(make(), "resources/read", read(meta))
    assert meta_of(kept)["openai/widgetDomain"] == "http://localhost:5173"
    set_ = rewrite_once(make(CspConfig(domain=DOMAIN)), "resources/read", read(meta))
    assert meta_of(set_)["openai/widgetDomain"] == ORIGIN


# (domain, public_url, expected origin)
ORIGINS: dict[str, tuple[str | None, str | None, str | None]] = {
    "domain": (DOMAIN, None, ORIGIN),
    "domain with a port": ("w.example.com:8443", None, "https://w.example.com:8443"),
    "domain given with scheme and slash": ("https://w.example.com/", None, "https://w.example.com"),
    "public_url": (None, "https://MCP.example.com:8443/mcp", "https://mcp.example.com:8443"),
    "public_url default port": (None, "https://mcp.example.com:443/mcp", "https://mcp.example.com"),
    "domain wins over public_url": (DOMAIN, PUBLIC_URL, ORIGIN),
    "neither": (None, None, None),
}


@pytest.mark.parametrize("case", ORIGINS)
def test_public_origin(case: str) -> None:
    """The public origin comes from `[csp] domain`, else from the public URL, else nowhere."""
    domain, public_url, expected = ORIGINS[case]
    rw = make(CspConfig(domain=domain), public_url=public_url)
    out = rewrite_once(rw, "resources/read", read(shapes({"connectDomains": ["https://a.x"]})))
    assert connect(meta_of(out)) == ([expected] if expected else []) + ["https://a.x"]
    assert meta_of(out).get("openai/widgetDomain") == expected


# --- [[csp.widget]] rules --------------------------------------------------------------------

GLOBS = [
    ("*", WIDGET, True),
    ("*", "", True),
    ("ui://*", "ui://x/y/z.html", True),
    ("ui://*", "UI://x", False),
    ("UI://*", "ui://x", False),
    ("ui://?", "ui://a", True),
    ("ui://?", "ui://ab", False),
    ("ui://?", "ui://", False),
    ("ui://map/[x].html", "ui://map/[x].html", True),
    ("ui://map/[x].html", "ui://map/x.html", False),
    ("ui://map/[!a]", "ui://map/b", False),
    ("[", "a", False),
    ("ui://[ab]", "ui://a", False),
    ("ui://]", "ui://]", True),
    ("*.html", "ui://a.html", True),
    ("*.html", "ui://a.html.bak", False),
    ("ui://a", "ui://a/b", False),
    ("ui://a", "xui://a", False),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "abc", True),
    ("a*b*c", "aXbY", False),
    ("**", "", True),
    ("?", "", False),
    ("?*?", "ab", True),
    ("a\\*", "a\\bc", True),
    ("a\\*", "a*", False),
    ("*a*a*a*a*a*b", "a" * 200, False),
]


@pytest.mark.parametrize(("pattern", "uri", "matches"), GLOBS)
def test_widget_rule_glob(pattern: str, uri: str, matches: bool) -> None:
    """Rules match the widget URI as a whole, case-sensitive glob of `*` and `?` only."""
    rule = WidgetRule(pattern, connect_domains=("https://rule.example",))
    tool = {"name": "t", "_meta": {"ui": {"resourceUri": uri}} if uri else {"openai/x": 1}}
    out = rewrite_once(make(CspConfig(widgets=(rule,))), "tools/list", {"tools": [tool]})
    got = out["tools"][0]["_meta"]["ui"]["csp"]["connectDomains"]
    assert got == (["https://rule.example"] if matches else [])


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """An independent translation of the glob to a regular expression."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL)


@given(st.data(), st.text("ab*?[]", max_size=6))
def test_widget_rule_glob_agrees_with_a_regex(data: st.DataObject, pattern: str) -> None:
    """The glob matcher agrees with a regular-expression translation on any pattern and URI."""
    # Half the URIs are the pattern with some characters swapped, so matches are common.
    swaps = st.lists(
        st.sampled_from(["", "a", "b", "[", "ab"]), min_size=len(pattern), max_size=len(pattern)
    )
    near = swaps.map(lambda new: "".join(n or c for c, n in zip(pattern, new, strict=True)))
    uri = data.draw(near | st.text("ab*?[]", max_size=8))
    rule = WidgetRule(pattern, resource_domains=("https://hit.example",))
    rw = make(CspConfig(widgets=(rule,)))
    out = rw.rewrite("resources/read", read(shapes({}), uri=uri), None)
    assert out is not None
    hit = meta_of(out)["ui"]["csp"]["resourceDomains"] == ["https://hit.example"]
    assert hit == (_glob_regex(pattern).fullmatch(uri) is not None)


A, B, C = "https://a.example", "https://b.example", "https://c.example"

# (rules, expected connect list) for WIDGET, with upstream [U] and config extend [X]
RULE_CASES: dict[str, tuple[tuple[WidgetRule, ...], list[str]]] = {
    "extend appends": ((WidgetRule("ui://*", (A,), "extend"),), [ORIGIN, "https://u.x", *EXTRA, A]),
    "no mode extends": ((WidgetRule("ui://*", (A,)),), [ORIGIN, "https://u.x", *EXTRA, A]),
    "replace sets exactly, origin still first": (
        (WidgetRule("ui://*", (A,), "replace"),),
        [ORIGIN, A],
    ),
    "replace with no domains empties": (
        (WidgetRule("ui://*", connect_domains_mode="replace", connect_domains=()),),
        [ORIGIN],
    ),
    "later replace wins over earlier": (
        (WidgetRule("ui://*", (A,), "replace"), WidgetRule("ui://map/*", (B,), "replace")),
        [ORIGIN, B],
    ),
    "file order, not specificity": (
        (WidgetRule("ui://map/*", (B,), "replace"), WidgetRule("ui://*", (A,), "replace")),
        [ORIGIN, A],
    ),
    "replace then extend": (
        (WidgetRule("*", (A,), "replace"), WidgetRule("*", (B, A), "extend")),
        [ORIGIN, A, B],
    ),
    "extend then replace": (
        (WidgetRule("*", (A,), "extend"), WidgetRule("*", (C,), "replace")),
        [ORIGIN, C],
    ),
    "non-matching rules are ignored": (
        (WidgetRule("ui://other/*", (A,), "replace"), WidgetRule("ui://map/app.htm", (B,))),
        [ORIGIN, "https://u.x", *EXTRA],
    ),
    "rule without this directive leaves it": (
        (WidgetRule("*", resource_domains=(A,), resource_domains_mode="replace"),),
        [ORIGIN, "https://u.x", *EXTRA],
    ),
}


@pytest.mark.parametrize("case", RULE_CASES)
def test_widget_rules_in_file_order(case: str) -> None:
    """Matching rules apply in file order after configured domains: replace sets, extend appends."""
    rules, expected = RULE_CASES[case]
    config = CspConfig(domain=DOMAIN, connect_domains=CspDirective(EXTRA), widgets=rules)
    out = rewrite_once(
        make(config), "resources/read", read(shapes({"connectDomains": ["https://u.x"]}))
    )
    assert connect(meta_of(out)) == expected


def test_rules_differ_per_widget() -> None:
    """Each item of a list is matched against its own URI."""
    rules = (WidgetRule("ui://map/*", (A,)), WidgetRule("ui://chart/*", (B,)))
    result = {
        "resources": [
            {"uri": "ui://map/a.html"},
            {"uri": "ui://chart/b.html"},
            {"uri": "ui://other/c.html"},
        ]
    }
    out = rewrite_once(make(CspConfig(widgets=rules)), "resources/list", result)
    got = [item["_meta"]["ui"]["csp"]["connectDomains"] for item in out["resources"]]
    assert got == [[A], [B], []]


def test_template_rules_match_the_uri_template() -> None:
    """A template is matched by its `uriTemplate`."""
    rule = WidgetRule("ui://map/{id}*", (A,))
    result = {"resourceTemplates": [{"uriTemplate": "ui://map/{id}.html"}]}
    out = rewrite_once(make(CspConfig(widgets=(rule,))), "resources/templates/list", result)
    assert out["resourceTemplates"][0]["_meta"]["ui"]["csp"]["connectDomains"] == [A]


@pytest.mark.parametrize(
    ("meta", "uri"),
    [
        ({"ui": {"resourceUri": "ui://m/a"}, "ui/resourceUri": "ui://m/b"}, "ui://m/a"),
        ({"ui/resourceUri": "ui://m/b", "openai/outputTemplate": "ui://m/c"}, "ui://m/b"),
        ({"ui": {"resourceUri": 5}, "openai/outputTemplate": "ui://m/c"}, "ui://m/c"),
        ({"openai/outputTemplate": ["ui://m/c"]}, ""),
    ],
)
def test_tool_widget_uri(meta: dict[str, Json], uri: str) -> None:
    """A tool matches by `ui.resourceUri`, then `ui/resourceUri`, then `openai/outputTemplate`."""
    rules = tuple(
        WidgetRule(u, (u or "https://none.example",))
        for u in ("ui://m/a", "ui://m/b", "ui://m/c", "")
    )
    out = rewrite_once(make(CspConfig(widgets=rules)), "tools/list", {"tools": [{"_meta": meta}]})
    assert out["tools"][0]["_meta"]["ui"]["csp"]["connectDomains"] == [
        uri or "https://none.example"
    ]


# (rule, upstream meta, expected ui.csp.baseUriDomains, expected openai redirect_domains)
PASS_THROUGH: dict[str, tuple[WidgetRule | None, dict[str, Json], Json, Json]] = {
    "untouched without a rule": (
        None,
        shapes({"baseUriDomains": [A, "http://localhost"]}, {"redirect_domains": [B, 7]}),
        [A, "http://localhost"],
        [B, 7],
    ),
    "malformed and untouched": (
        None, shapes({"baseUriDomains": "x"}, {"redirect_domains": {}}), "x", {},
    ),
    "absent and untouched": (None, shapes({}), None, None),
    "extend appends to the upstream's": (
        WidgetRule("*", base_uri_domains=(C,), redirect_domains=(C, B)),
        shapes({"baseUriDomains": [A, "http://localhost"]}, {"redirect_domains": [B, 7]}),
        [A, "http://localhost", C],
        [B, C],
    ),
    "replace sets": (
        WidgetRule("*", base_uri_domains=(C,), base_uri_domains_mode="replace",
                   redirect_domains=(), redirect_domains_mode="replace"),
        shapes({"baseUriDomains": [A]}, {"redirect_domains": [B]}),
        [C],
        [],
    ),
    "a rule creates them": (
        WidgetRule("*", base_uri_domains=(A,), redirect_domains=(B,)),
        shapes({}),
        [A],
        [B],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", PASS_THROUGH)
def test_base_uri_and_redirect_pass_through(case: str) -> None:
    """baseUriDomains and redirect_domains keep the upstream's value unless a rule names them."""
    rule, meta, base_uri, redirect = PASS_THROUGH[case]
    rules = () if rule is None else (rule,)
    out = rewrite_once(make(CspConfig(domain=DOMAIN, widgets=rules)), "resources/read", read(meta))
    new = meta_of(out)
    assert new["ui"]["csp"].get("baseUriDomains") == base_uri
    assert new["openai/widgetCSP"].get("redirect_domains") == redirect
    assert ORIGIN not in (base_uri or [])
    assert ORIGIN not in (redirect or [])


# --- ui.domain and cacheScope ----------------------------------------------------------------


def _claude(url: str) -> str:
    """Claude's sandbox domain, computed independently of the module under test."""
    return hashlib.sha256(url.encode()).hexdigest()[:32] + ".claudemcpcontent.com"


def test_claude_ui_domain_helper() -> None:
    """The helper hashes the exact URL it is given."""
    assert claude_ui_domain(PUBLIC_URL) == _claude(PUBLIC_URL)
    assert claude_ui_domain(PUBLIC_URL + "/") != claude_ui_domain(PUBLIC_URL)
    assert len(claude_ui_domain("x").split(".")[0]) == 32


UPSTREAM_DOMAIN = "up.example"
RULE_HOST = WidgetRule("ui://map/*", ui_domain="rule.example")
OTHER_RULE = WidgetRule("ui://other/*", ui_domain="never.example")

# (client, config, public_url, expected ui.domain (None: absent), cacheScope public -> ?)
UI_DOMAIN: dict[str, tuple[str | None, CspConfig, str | None, str | None, str]] = {
    "claude gets the hash of the public URL": (
        CLAUDE, CspConfig(domain=DOMAIN), PUBLIC_URL, _claude(PUBLIC_URL), "private",
    ),
    "claude web and desktop alike": (
        "Claude-AI", CspConfig(), PUBLIC_URL, _claude(PUBLIC_URL), "private",
    ),
    "claude without a public URL keeps the upstream's": (
        CLAUDE, CspConfig(domain=DOMAIN), None, UPSTREAM_DOMAIN, "private",
    ),
    "chatgpt gets the public origin": (
        CHATGPT, CspConfig(domain=DOMAIN), PUBLIC_URL, ORIGIN, "private",
    ),
    "chatgpt with only a public URL": (
        CHATGPT, CspConfig(), PUBLIC_URL, "https://mcp.example.com", "private",
    ),
    "vs code keeps the upstream's": (
        "Visual Studio Code", CspConfig(domain=DOMAIN), PUBLIC_URL, UPSTREAM_DOMAIN, "private",
    ),
    "unknown client keeps the upstream's": (
        None, CspConfig(domain=DOMAIN), PUBLIC_URL, UPSTREAM_DOMAIN, "private",
    ),
    "nothing public known: the same for everyone": (
        CLAUDE, CspConfig(), None, UPSTREAM_DOMAIN, "public",
    ),
    "[csp] ui_domain overrides every host": (
        CLAUDE, CspConfig(domain=DOMAIN, ui_domain="fixed.example"), PUBLIC_URL,
        "fixed.example", "public",
    ),
    "[csp] ui_domain needs no public URL": (
        None, CspConfig(ui_domain="fixed.example"), None, "fixed.example", "public",
    ),
    "a rule's ui_domain overrides [csp] ui_domain": (
        CHATGPT, CspConfig(domain=DOMAIN, ui_domain="fixed.example", widgets=(RULE_HOST,)),
        PUBLIC_URL, "rule.example", "public",
    ),
    "the last matching rule's ui_domain wins": (
        CLAUDE,
        CspConfig(widgets=(RULE_HOST, WidgetRule("*", ui_domain="last.example"), OTHER_RULE)),
        PUBLIC_URL, "last.example", "public",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", UI_DOMAIN)
@pytest.mark.parametrize("upstream_domain", [True, False])
def test_ui_domain_per_host(case: str, upstream_domain: bool) -> None:
    """`_meta.ui.domain` follows PROTOCOL.md §7 decision 3, and a per-host answer is private."""
    client, config, public_url, expected, scope = UI_DOMAIN[case]
    if not upstream_domain and expected == UPSTREAM_DOMAIN:
        expected = None
    ui: dict[str, Json] = {"csp": {}}
    if upstream_domain:
        ui["domain"] = UPSTREAM_DOMAIN
    rw = make(config, public_url=public_url)
    out = rewrite_once(rw, "resources/read", read({"ui": ui}, cacheScope="public", ttlMs=5), client)
    assert meta_of(out)["ui"].get("domain") == expected
    assert out["cacheScope"] == scope
    assert out["ttlMs"] == 5


@pytest.mark.parametrize("method", ["tools/list", "tools/call", "resources/list"])
def test_cache_scope_on_every_method(method: str) -> None:
    """Every widget method's `cacheScope: "public"` turns private when the answer varies by host."""
    results: dict[str, dict[str, Json]] = {
        "tools/list": {"tools": [TOOL_UI]},
        "tools/call": {"content": [], "_meta": {"ui": {}}},
        "resources/list": {"resources": [{"uri": WIDGET}]},
    }
    result = {**results[method], "cacheScope": "public"}
    out = rewrite_once(make(CspConfig(domain=DOMAIN)), method, result, CLAUDE)
    assert out["cacheScope"] == "private"


@pytest.mark.parametrize("scope", ["private", "PUBLIC", None, 1, ["public"]])
def test_cache_scope_other_values_untouched(scope: Json) -> None:
    """Only the exact value "public" is changed; anything else passes through."""
    out = rewrite_once(
        make(CspConfig(domain=DOMAIN)), "resources/read", read({}, cacheScope=scope), CLAUDE
    )
    assert out["cacheScope"] == scope


def test_cache_scope_alone_can_change() -> None:
    """A result already right for this host still becomes private, since another host differs."""
    rw = make(CspConfig(domain=DOMAIN), public_url=PUBLIC_URL)
    done = rewrite_once(rw, "resources/read", read({}), CLAUDE)
    out = rw.rewrite("resources/read", {**done, "cacheScope": "public"}, CLAUDE)
    assert out == {**done, "cacheScope": "private"}


# --- copy on write ---------------------------------------------------------------------------


def test_copy_on_write() -> None:
    """Only the path to a changed `_meta` is new; every other object is shared with the input."""
    html = "<!doctype html>" + "x" * 100_000
    untouched_tool = {"name": "plain", "inputSchema": {"type": "object"}}
    widget_tool = {
        "name": "map",
        "inputSchema": {"type": "object"},
        "_meta": {"ui": {"resourceUri": WIDGET}},
    }
    tools = {"tools": [untouched_tool, widget_tool], "nextCursor": {"c": 1}}
    rw = make(CspConfig(domain=DOMAIN))
    out = rewrite_once(rw, "tools/list", tools)
    assert out["tools"][0] is untouched_tool
    assert out["tools"][1]["inputSchema"] is widget_tool["inputSchema"]
    assert out["nextCursor"] is tools["nextCursor"]
    assert list(out["tools"][1]) == ["name", "inputSchema", "_meta"]

    contents = {"contents": [{"uri": WIDGET, "text": html}, {"uri": "ui://b", "blob": html}]}
    out = rewrite_once(rw, "resources/read", contents)
    assert out["contents"][0]["text"] is html
    assert out["contents"][1]["blob"] is html


# --- the real fixture ------------------------------------------------------------------------


def _fixture_results() -> dict[str, dict[str, Json]]:
    """The JSON-RPC result of each request in mcp-apps-map.jsonl, keyed by method."""
    results = {}
    for line in (FIXTURES / "mcp-apps-map.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        method = json.loads(record["request"]["body"]).get("method")
        for data in record["response"]["body"].split("\n"):
            if data.startswith("data: "):
                message = json.loads(data[6:])
                if "result" in message:
                    results[method] = message["result"]
    return results


FIXTURE_CONFIG = CspConfig(
    domain=DOMAIN, connect_domains=CspDirective(("https://api.widgets.example.com",))
)


def test_fixture_resources_read() -> None:
    """The real map widget keeps its upstream domains after the public origin, in both shapes."""
    result = _fixture_results()["resources/read"]
    upstream = ["https://*.openstreetmap.org", "https://cesium.com", "https://*.cesium.com"]
    assert result["contents"][0]["_meta"]["ui"]["csp"]["connectDomains"] == upstream
    out = rewrite_once(make(FIXTURE_CONFIG), "resources/read", result, CLAUDE)
    meta = meta_of(out)
    assert connect(meta) == [ORIGIN, *upstream, "https://api.widgets.example.com"]
    assert resource(meta) == [ORIGIN, *upstream]
    assert frame(meta) == []
    assert meta["openai/widgetDomain"] == ORIGIN
    assert "domain" not in meta["ui"]  # Claude's needs the exact public URL
    assert out["contents"][0]["text"] is result["contents"][0]["text"]
    assert len(result["contents"][0]["text"]) > 200_000


def test_fixture_with_public_url_for_claude() -> None:
    """Given the public URL, the fixture's widget gets Claude's sandbox domain."""
    url = "https://widgets.example.com/mcp"
    result = _fixture_results()["resources/read"]
    out = rewrite_once(make(FIXTURE_CONFIG, public_url=url), "resources/read", result, CLAUDE)
    assert meta_of(out)["ui"]["domain"] == _claude(url)


def test_fixture_lists() -> None:
    """Only the widget tool of tools/list changes; the ui:// resource of resources/list does."""
    results = _fixture_results()
    rw = make(FIXTURE_CONFIG)
    tools = rewrite_once(rw, "tools/list", results["tools/list"], CLAUDE)
    assert tools["tools"][1] is results["tools/list"]["tools"][1]
    assert connect(tools["tools"][0]["_meta"]) == [ORIGIN, "https://api.widgets.example.com"]
    assert tools["tools"][0]["_meta"]["ui/resourceUri"] == "ui://cesium-map/mcp-app.html"
    resources = rewrite_once(rw, "resources/list", results["resources/list"], CLAUDE)
    assert resource(resources["resources"][0]["_meta"]) == [ORIGIN]


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
domains = st.sampled_from(
    [
        ORIGIN,
        A,
        B,
        "http://localhost:5173",
        "http://127.0.0.1:8000",
        "https://[::1]",
        "'self'",
        "a b",
        "",
    ]
)
domain_lists = st.lists(domains | json_values, max_size=5) | json_values
csp_objects = st.fixed_dictionaries(
    {},
    optional={
        k: domain_lists
        for k in ("connectDomains", "resourceDomains", "frameDomains", "baseUriDomains",
                  "connect_domains", "resource_domains", "frame_domains", "redirect_domains")
    },
)  # fmt: skip
metas = (
    st.fixed_dictionaries(
        {},
        optional={
            "ui": st.fixed_dictionaries(
                {}, optional={"csp": csp_objects | json_values, "domain": json_values}
            )
            | json_values,
            "openai/widgetCSP": csp_objects | json_values,
            "openai/widgetDomain": json_values,
            "openai/outputTemplate": st.sampled_from([WIDGET, "ui://x"]) | json_values,
            "other": json_values,
        },
    )
    | json_values
)
uris = st.sampled_from([WIDGET, "ui://other/a.html", "https://x.example/a", ""]) | json_values
items = (
    st.fixed_dictionaries({"_meta": metas}, optional={"uri": uris, "uriTemplate": uris})
    | json_values
)
results = st.fixed_dictionaries(
    {},
    optional={
        "tools": st.lists(items, max_size=3) | json_values,
        "resources": st.lists(items, max_size=3) | json_values,
        "resourceTemplates": st.lists(items, max_size=3) | json_values,
        "contents": st.lists(items, max_size=3) | json_values,
        "_meta": metas,
        "cacheScope": st.sampled_from(["public", "private"]) | json_values,
    },
)
modes = st.sampled_from(["extend", "replace"])
domain_tuples = st.lists(domains, max_size=3).map(tuple)
rules = st.builds(
    WidgetRule,
    match=st.sampled_from(["*", "ui://*", WIDGET, "ui://?ther/*", "[x]"]),
    connect_domains=st.none() | domain_tuples,
    connect_domains_mode=st.none() | modes,
    frame_domains=st.none() | domain_tuples,
    base_uri_domains=st.none() | domain_tuples,
    base_uri_domains_mode=st.none() | modes,
    redirect_domains=st.none() | domain_tuples,
    ui_domain=st.none() | st.just("rule.example"),
)
configs = st.builds(
    CspConfig,
    domain=st.none() | st.just(DOMAIN),
    ui_domain=st.none() | st.just("fixed.example"),
    connect_domains=st.builds(CspDirective, domain_tuples, modes),
    resource_domains=st.builds(CspDirective, domain_tuples, modes),
    frame_domains=st.builds(CspDirective, domain_tuples, modes),
    widgets=st.lists(rules, max_size=3).map(tuple),
)


@given(
    configs,
    st.none() | st.just(PUBLIC_URL),
    st.sampled_from(ALL_METHODS),
    results,
    st.sampled_from([None, CLAUDE, CHATGPT, "mcp"]),
)
def test_rewrite_never_raises_and_is_idempotent(
    config: CspConfig,
    public_url: str | None,
    method: str,
    result: dict[str, Json],
    client: str | None,
) -> None:
    """Any JSON in `_meta` or the lists is survived, the input is not mutated, and twice is once."""
    rw = make(config, public_url=public_url)
    before = json.dumps(result, sort_keys=True)
    out = rw.rewrite(method, result, client)
    assert json.dumps(result, sort_keys=True) == before
    if out is not None:
        assert out != result
        json.dumps(out)  # still plain JSON
        assert rw.rewrite(method, out, client) is None
