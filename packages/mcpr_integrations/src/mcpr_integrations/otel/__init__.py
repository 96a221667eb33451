"""The OpenTelemetry sink (extra `otel`): request events as spans and metrics over OTLP/HTTP.

* `mcpr_integrations.otel.config`: the `[otel]` table of `mcpr.toml` (`load_otel_config`).
* `mcpr_integrations.otel.semconv`: span names and attributes, after the MCP conventions.
* `mcpr_integrations.otel.sink`: `OtelSink`, which needs the extra installed.

Only the config is re-exported here: importing it needs nothing of OpenTelemetry.
"""

from mcpr_integrations.otel.config import OtelConfig, load_otel_config, otel_installed

__all__ = ["OtelConfig", "load_otel_config", "otel_installed"]
