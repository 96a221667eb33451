"""The example of `packages/mcpr_core/README.md`, run as a doctest against a captured line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import FIXTURES
from tests.readme_examples import ROOT, run_readme_example

#: The line the example reads: the conformance server's failing tool, answered over SSE.
CAPTURE_LINE = 5


def test_core_readme_example_runs_against_a_captured_exchange(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every statement of the example gives the output the README shows, on a real capture."""
    lines = (FIXTURES / "conformance-everything.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "capture.jsonl").write_text(lines[CAPTURE_LINE] + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    examples, failures = run_readme_example(ROOT / "packages" / "mcpr_core" / "README.md")
    assert failures == []
    assert examples > 10
