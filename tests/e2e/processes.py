"""Child processes of the end-to-end tests: `python -m mcpr_cli ...`, and waiting for a port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

#: How long a child may take to listen (imports dominate).
STARTUP_TIMEOUT = 20.0


def spawn_mcpr(
    *args: str, stderr_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `python -m mcpr_cli ARGS` with no stdin or stdout and its stderr in a file.

    Without `env` the child inherits this process's environment.
    """
    with stderr_path.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "mcpr_cli", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def wait_listening(
    proc: subprocess.Popen[bytes], port: int, stderr_path: Path, name: str = "mcpr"
) -> None:
    """Return once 127.0.0.1:port accepts a connection; fail with the child's stderr otherwise."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"{name} exited with {proc.returncode} before listening; stderr:\n"
                + stderr_path.read_text(errors="replace"),
                pytrace=False,
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{name} did not listen on port {port} within {STARTUP_TIMEOUT} s; "
                    "stderr:\n" + stderr_path.read_text(errors="replace"),
                    pytrace=False,
                )
            time.sleep(0.05)
