"""Run the `pycon` example of a package README as a doctest and collect what went wrong."""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "run_readme_example"]

ROOT = Path(__file__).resolve().parents[1]


class _Collecting(doctest.DocTestRunner):
    """A doctest runner that keeps each failure as one line of text instead of printing it."""

    def __init__(self) -> None:
        super().__init__(optionflags=doctest.ELLIPSIS)
        self.problems: list[str] = []

    def report_failure(
        self, out: object, test: doctest.DocTest, example: doctest.Example, got: str
    ) -> None:
        self.problems.append(f"{example.source.strip()}\n  expected {example.want!r}, got {got!r}")

    def report_unexpected_exception(
        self, out: object, test: doctest.DocTest, example: doctest.Example, exc_info: Any
    ) -> None:
        self.problems.append(f"{example.source.strip()}\n  raised {exc_info[1]!r}")


def run_readme_example(readme: Path) -> tuple[int, list[str]]:
    """Run the first `pycon` block of `readme` in the current folder: (examples, failures)."""
    text = readme.read_text(encoding="utf-8")
    block = text.split("```pycon\n", 1)[1].split("```", 1)[0]
    test = doctest.DocTestParser().get_doctest(block, {}, readme.parent.name, str(readme), 0)
    runner = _Collecting()
    runner.run(test, out=lambda _: None)
    return len(test.examples), runner.problems
