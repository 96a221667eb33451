"""The OpenTelemetry sink tests need the `otel` extra (see tests/otel_extra.py)."""

from tests.otel_extra import otel_ignores

collect_ignore = otel_ignores("test_otel_sink.py")
