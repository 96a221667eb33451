"""`python -m benchmarks`: run the harness (see benchmarks/run.py and benchmarks/README.md)."""

from __future__ import annotations

from benchmarks.run import main

if __name__ == "__main__":
    main()
