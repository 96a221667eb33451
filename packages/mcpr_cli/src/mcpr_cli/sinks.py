"""The optional sinks of `mcpr proxy run`: `[otel]` and the `[[sinks]]` plugins.

The built-in sinks (stderr, store, cloud) open in `runner.open_sinks`; the ones here are
built first, before anything else opens, because a plugin's factory may refuse its
configuration: that is a startup failure (exit 1) reported with the key path, as
`mcpr validate` reports it. Each comes wrapped in a `SinkSpec`: plugins with their
configured name and `max_failures`; the OpenTelemetry sink is never disabled (its
exporter already retries and gives up on its own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mcpr_cli.bus import SinkSpec
from mcpr_core.tracecontext import TraceIds
from mcpr_integrations.otel.config import OtelConfig
from mcpr_integrations.plugins import SinkBuildError, SinkConfig, build_sink

__all__ = ["OptionalSinks", "build_optional_sinks"]


@dataclass(frozen=True, slots=True)
class OptionalSinks:
    """What `build_optional_sinks` made: the sinks, and the trace id source to propagate."""

    specs: tuple[SinkSpec, ...] = ()
    #: The OpenTelemetry sink's id source, when `[otel] propagate = true`.
    trace_ids: Callable[[], TraceIds] | None = None

    def close(self) -> None:
        """Close every sink (when the proxy cannot start after all)."""
        for spec in self.specs:
            spec.sink.close()


def build_optional_sinks(
    *, proxy_name: str, plugins: Sequence[SinkConfig] = (), otel: OtelConfig | None = None
) -> OptionalSinks:
    """Build the OpenTelemetry sink and every plugin sink, in configuration order.

    Raises SinkBuildError for the first plugin whose factory fails, once the sinks built
    before it are closed again.
    """
    specs: list[SinkSpec] = []
    trace_ids: Callable[[], TraceIds] | None = None
    try:
        if otel is not None:
            from mcpr_integrations.otel.sink import OtelSink  # needs the `otel` extra

            otel_sink = OtelSink(otel, proxy_name=proxy_name)
            specs.append(SinkSpec(otel_sink))
            if otel.propagate:
                trace_ids = otel_sink.trace_ids
        for plugin in plugins:
            sink = build_sink(plugin)
            specs.append(SinkSpec(sink, name=plugin.name, max_failures=plugin.max_failures))
    except SinkBuildError:
        OptionalSinks(tuple(specs)).close()
        raise
    return OptionalSinks(tuple(specs), trace_ids)
