"""Custom sinks: the `mcpr.sinks` entry points and the `[[sinks]]` tables of `mcpr.toml`.

    [[sinks]]
    use = "jsonl"              # an entry point's name in the group `mcpr.sinks` (required)
    name = "audit"             # its label in logs and /metrics (default: `use`)
    max_failures = 10          # consecutive failed calls before it is disabled (0: never)
    path = "/var/log/mcpr/events.jsonl"    # every other key is the sink's own

Any installed distribution provides a sink by declaring an entry point, e.g. in its
`pyproject.toml`: `[project.entry-points."mcpr.sinks"] jsonl = "my_pkg:make_sink"`, the
object named being a `mcpr_core.events.SinkFactory`.

Two steps, so that reading a configuration runs no third-party code: `load_sink_configs`
checks the tables and looks each `use` up among the installed entry point names (an
unknown name is an error at `sinks[N].use`, listing what is installed); `build_sink`
imports the entry point and calls the factory with the sink's own keys. What the factory
raises becomes problems with key paths: a `SinkConfigError` names the keys
(`sinks[N].<key>`), anything else is reported as the factory's failure (`sinks[N]`).
`check_sinks` builds and closes each sink, for `mcpr validate`.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from mcpr_core.config import Problem
from mcpr_core.events import EventSink, SinkConfigError

__all__ = [
    "BUILT_IN_NAMES",
    "DEFAULT_MAX_FAILURES",
    "SINK_GROUP",
    "SinkBuildError",
    "SinkConfig",
    "build_sink",
    "check_sinks",
    "installed_sinks",
    "load_sink_configs",
]

#: The entry-point group custom sinks register in.
SINK_GROUP: Final = "mcpr.sinks"
#: Consecutive failed calls after which a custom sink is disabled, unless configured.
DEFAULT_MAX_FAILURES: Final = 10
#: Labels of the built-in sinks: a custom sink cannot take one (they share /metrics labels).
BUILT_IN_NAMES: Final = frozenset({"stderr", "sqlite", "cloud", "otel"})

_OWN_KEYS: Final = ("use", "name", "max_failures")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One valid `[[sinks]]` table: which entry point, under which name, with which keys."""

    index: int
    use: str
    name: str
    max_failures: int
    entry_point: importlib.metadata.EntryPoint = field(repr=False)
    #: The sink's own keys (the table without `use`, `name` and `max_failures`), read-only.
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def path(self) -> str:
        """The table's key path, `sinks[N]`."""
        return f"sinks[{self.index}]"


class SinkBuildError(Exception):
    """A sink could not be built; `problems` say why, with key paths."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = tuple(problems)


def installed_sinks() -> dict[str, importlib.metadata.EntryPoint]:
    """The entry points of the group `mcpr.sinks`, by name (the first of a duplicate wins)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in importlib.metadata.entry_points(group=SINK_GROUP):
        found.setdefault(entry_point.name, entry_point)
    return found


def _describe(value: object) -> str:
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"))
    for kind, text in kinds:
        if isinstance(value, kind):
            return text
    if isinstance(value, list):
        return "an array"
    return "a table" if isinstance(value, Mapping) else f"a {type(value).__name__}"


def _unknown_use(path: str, use: str, available: Iterable[str]) -> Problem:
    names = sorted(available)
    close = difflib.get_close_matches(use, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    have = f"installed: {', '.join(names)}" if names else f"none is installed in {SINK_GROUP!r}"
    return Problem(f"{path}.use", f"no sink named {use!r} ({have}){hint}", "error")


def _load_one(
    index: int,
    table: Mapping[str, Any],
    available: Mapping[str, importlib.metadata.EntryPoint],
    taken: set[str],
    problems: list[Problem],
) -> SinkConfig | None:
    path = f"sinks[{index}]"
    before = len(problems)
    use = table.get("use")
    if use is None:
        problems.append(Problem(f"{path}.use", "required: the name of an installed sink", "error"))
    elif not isinstance(use, str):
        problems.append(Problem(f"{path}.use", f"expected a string, got {_describe(use)}", "error"))
    elif use not in available:
        problems.append(_unknown_use(path, use, available))
    name = table.get("name", use)
    if "name" in table and not (isinstance(name, str) and _NAME.fullmatch(name)):
        message = f"must be 1-64 characters from A-Z a-z 0-9 . _ -, got {name!r}"
        problems.append(Problem(f"{path}.name", message, "error"))
    elif isinstance(name, str) and (name in taken or name in BUILT_IN_NAMES):
        message = f"{name!r} is taken (by a built-in sink or another [[sinks]] table)"
        message += ": give this one its own `name`"
        problems.append(Problem(f"{path}.name", message, "error"))
    max_failures = table.get("max_failures", DEFAULT_MAX_FAILURES)
    if not isinstance(max_failures, int) or isinstance(max_failures, bool) or max_failures < 0:
        message = f"expected an integer >= 0 (0: never disable), got {max_failures!r}"
        problems.append(Problem(f"{path}.max_failures", message, "error"))
    if len(problems) > before or not isinstance(use, str) or not isinstance(name, str):
        return None
    taken.add(name)
    options = {str(k): v for k, v in table.items() if k not in _OWN_KEYS}
    return SinkConfig(
        index=index,
        use=use,
        name=name,
        max_failures=max_failures,
        entry_point=available[use],
        options=MappingProxyType(options),
    )


def load_sink_configs(
    data: Mapping[str, Any],
    available: Mapping[str, importlib.metadata.EntryPoint] | None = None,
) -> tuple[tuple[SinkConfig, ...], tuple[Problem, ...]]:
    """Check the `[[sinks]]` tables of a parsed `mcpr.toml` mapping (the whole file's).

    `available` defaults to `installed_sinks()`. Every problem is reported at once; the
    tables without a problem of their own come back all the same, so that `mcpr validate`
    can try their factories too (nothing may start while any problem is an error).
    """
    tables = data.get("sinks")
    if tables is None:
        return (), ()
    if not isinstance(tables, list):
        message = f"expected an array of tables ([[sinks]]), got {_describe(tables)}"
        return (), (Problem("sinks", message, "error"),)
    if available is None:
        available = installed_sinks()
    problems: list[Problem] = []
    configs: list[SinkConfig] = []
    taken: set[str] = set()
    for index, table in enumerate(tables):
        if not isinstance(table, Mapping):
            message = f"expected a table, got {_describe(table)}"
            problems.append(Problem(f"sinks[{index}]", message, "error"))
            continue
        config = _load_one(index, table, available, taken, problems)
        if config is not None:
            configs.append(config)
    return tuple(configs), tuple(problems)


def build_sink(config: SinkConfig) -> EventSink:
    """Import the entry point and call its factory; SinkBuildError says what went wrong."""
    path = config.path
    target = config.entry_point.value
    try:
        factory = config.entry_point.load()
    except Exception as exc:  # third-party import: any failure is that plugin's problem
        problem = Problem(f"{path}.use", f"cannot load {target}: {exc!r}", "error")
        raise SinkBuildError([problem]) from exc
    try:
        sink = factory(config.options)
    except SinkConfigError as exc:
        problems = [
            Problem(f"{path}.{key}" if key else path, message, "error")
            for key, message in exc.problems
        ]
        raise SinkBuildError(problems) from exc
    except Exception as exc:
        problem = Problem(path, f"the factory {target} raised {exc!r}", "error")
        raise SinkBuildError([problem]) from exc
    if not isinstance(sink, EventSink):
        message = f"the factory {target} returned {type(sink).__name__}, not an EventSink"
        raise SinkBuildError([Problem(f"{path}.use", message, "error")])
    return sink


def check_sinks(configs: Iterable[SinkConfig]) -> tuple[Problem, ...]:
    """Build and close every sink (what `mcpr validate` does); the problems found."""
    problems: list[Problem] = []
    for config in configs:
        try:
            sink = build_sink(config)
        except SinkBuildError as exc:
            problems.extend(exc.problems)
            continue
        try:
            sink.close()
        except Exception as exc:  # a sink failing to close is reported, not fatal here
            problems.append(Problem(config.path, f"close() raised {exc!r}", "warning"))
    return tuple(problems)
