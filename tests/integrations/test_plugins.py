"""Custom sinks: `[[sinks]]` tables checked against `mcpr.sinks` entry points, then built."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from mcpr_core.config import Problem
from mcpr_integrations.plugins import (
    DEFAULT_MAX_FAILURES,
    SinkBuildError,
    SinkConfig,
    build_sink,
    check_sinks,
    installed_sinks,
    load_sink_configs,
)
from tests.integrations.sample_sinks import RecordingSink, entry_point

AVAILABLE: dict[str, EntryPoint] = {
    name: entry_point(name) for name in ("recording", "refusing", "crashing", "not_a_sink")
}


def configs(*tables: Any) -> tuple[SinkConfig, ...]:
    found, problems = load_sink_configs({"sinks": list(tables)}, AVAILABLE)
    assert problems == ()
    return found


def problems_of(data: Any) -> list[str]:
    _, problems = load_sink_configs({"sinks": data}, AVAILABLE)
    return [f"{p.severity}: {p.path}: {p.message}" for p in problems]


def test_no_sinks_table() -> None:
    """A file without [[sinks]] has no custom sinks and no problems."""
    assert load_sink_configs({}, AVAILABLE) == ((), ())


def test_table_is_read_with_defaults() -> None:
    """`use` picks the entry point; the name defaults to it; other keys are the sink's."""
    [config] = configs({"use": "recording", "path": "/tmp/x", "level": 3})
    assert (config.index, config.use, config.name) == (0, "recording", "recording")
    assert config.max_failures == DEFAULT_MAX_FAILURES
    assert dict(config.options) == {"path": "/tmp/x", "level": 3}
    assert config.path == "sinks[0]"
    assert config.entry_point is AVAILABLE["recording"]


def test_two_instances_need_two_names() -> None:
    """The same sink twice is fine with distinct names, an error without."""
    first, second = configs(
        {"use": "recording", "name": "audit", "max_failures": 0}, {"use": "recording"}
    )
    assert (first.name, first.max_failures, second.name) == ("audit", 0, "recording")
    assert problems_of([{"use": "recording"}, {"use": "recording"}]) == [
        "error: sinks[1].name: 'recording' is taken (by a built-in sink or another [[sinks]] "
        "table): give this one its own `name`"
    ]


def test_unknown_sink_lists_what_is_installed() -> None:
    """An unknown `use` is an error at `sinks[N].use`, naming the installed sinks."""
    [message] = problems_of([{"use": "recordin"}])
    assert message.startswith("error: sinks[0].use: no sink named 'recordin' (installed: ")
    assert message.endswith("did you mean 'recording'?")
    _, problems = load_sink_configs({"sinks": [{"use": "jsonl"}]}, {})
    assert problems == (
        Problem(
            "sinks[0].use", "no sink named 'jsonl' (none is installed in 'mcpr.sinks')", "error"
        ),
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"use": "recording"},
            "error: sinks: expected an array of tables ([[sinks]]), got a table",
        ),
        ([3], "error: sinks[0]: expected a table, got an integer"),
        ([{}], "error: sinks[0].use: required: the name of an installed sink"),
        ([{"use": 1}], "error: sinks[0].use: expected a string, got an integer"),
        ([{"use": "recording", "name": "a b"}], "error: sinks[0].name: must be 1-64 characters"),
        ([{"use": "recording", "name": "sqlite"}], "error: sinks[0].name: 'sqlite' is taken"),
        ([{"use": "recording", "max_failures": -1}], "error: sinks[0].max_failures: expected"),
        ([{"use": "recording", "max_failures": True}], "error: sinks[0].max_failures: expected"),
    ],
)
def test_bad_tables_have_key_paths(data: Any, expected: str) -> None:
    """Each structural problem is reported with its key path."""
    [message] = problems_of(data)
    assert message.startswith(expected)


def test_every_problem_at_once() -> None:
    """Problems of several tables are all reported in one pass; sound tables still come back."""
    tables = [{"use": "nope"}, {"use": "recording", "max_failures": "x"}, {"use": "crashing"}]
    found, problems = load_sink_configs({"sinks": tables}, AVAILABLE)
    assert [p.path for p in problems] == ["sinks[0].use", "sinks[1].max_failures"]
    assert [c.path for c in found] == ["sinks[2]"]


def test_build_calls_the_factory_with_the_sinks_own_keys() -> None:
    """The factory receives the table without mcpr's keys, read-only."""
    [config] = configs({"use": "recording", "name": "r", "max_failures": 2, "path": "p"})
    sink = build_sink(config)
    assert isinstance(sink, RecordingSink)
    assert sink.options == {"path": "p"}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            {"use": "recording", "colour": "red"},
            [Problem("sinks[0].colour", "unknown key", "error")],
        ),
        (
            {"use": "refusing"},
            [
                Problem("sinks[0].path", "required", "error"),
                Problem("sinks[0]", "cannot be used here", "error"),
            ],
        ),
        (
            {"use": "crashing"},
            [
                Problem(
                    "sinks[0]",
                    "the factory tests.integrations.sample_sinks:crashing raised "
                    "RuntimeError('disk on fire')",
                    "error",
                )
            ],
        ),
        (
            {"use": "not_a_sink"},
            [
                Problem(
                    "sinks[0].use",
                    "the factory tests.integrations.sample_sinks:not_a_sink returned object, "
                    "not an EventSink",
                    "error",
                )
            ],
        ),
    ],
)
def test_factory_failures_become_problems(table: dict[str, Any], expected: list[Problem]) -> None:
    """SinkConfigError keys, other exceptions and non-sinks are reported with key paths."""
    [config] = configs(table)
    with pytest.raises(SinkBuildError) as caught:
        build_sink(config)
    assert list(caught.value.problems) == expected
    assert check_sinks([config]) == tuple(expected)


def test_unloadable_entry_point() -> None:
    """An entry point whose module does not import is reported at `sinks[N].use`."""
    broken = {"ghost": EntryPoint("ghost", "no_such_module_anywhere:make", "mcpr.sinks")}
    [config], _ = load_sink_configs({"sinks": [{"use": "ghost"}]}, broken)
    with pytest.raises(SinkBuildError) as caught:
        build_sink(config)
    [problem] = caught.value.problems
    assert problem.path == "sinks[0].use"
    assert "cannot load no_such_module_anywhere:make" in problem.message


def test_check_reports_nothing_for_a_good_sink() -> None:
    """`check_sinks` builds a working sink, closes it again and reports no problem."""
    assert check_sinks(configs({"use": "recording"})) == ()


def test_installed_sinks_reads_the_entry_point_group() -> None:
    """Discovery reads the `mcpr.sinks` group of the installed distributions."""
    assert all(ep.group == "mcpr.sinks" for ep in installed_sinks().values())
