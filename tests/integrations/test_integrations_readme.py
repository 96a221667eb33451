"""The example of `packages/mcpr_integrations/README.md`, run as a doctest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.readme_examples import ROOT, run_readme_example


def test_integrations_readme_example_records_and_queries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events the example writes come back from the store as the README shows."""
    monkeypatch.chdir(tmp_path)
    examples, failures = run_readme_example(ROOT / "packages" / "mcpr_integrations" / "README.md")
    assert failures == []
    assert examples > 5
