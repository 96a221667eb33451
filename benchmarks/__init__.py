"""Benchmarks of mcpr: `uv run nox -s bench` (see benchmarks/README.md).

The package holds the harness (`python -m benchmarks`) and the processes it starts: the fast
MCP upstream, the load generator, and small launchers for mcpr and the FastMCP proxy.
The scripts beside it (csp_rewrite.py, and event_sinks.py and cloud_outage.py with the
processes and load of sinkbench.py) run on their own.
"""
