"""OpenTelemetry traces of a worker (optional: `pip install endure[otel]`, then ENDURE_OTEL=console
or ENDURE_OTEL=otlp): a span per invocation attempt and per ctx.run step.

The attempt span's parent is the W3C trace context the client sent (`traceparent` gRPC metadata,
kept in the invocation's headers and handed to every call the handler makes), so one trace follows
a request through the runtime and across handlers. Off by default and free when off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

_tracer: Any = None
_propagator: Any = None


def enable(exporter: str) -> None:
    """Install a tracer provider exporting to 'console' or 'otlp' (OTEL_EXPORTER_OTLP_* settings)."""
    global _tracer, _propagator
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                          "endure-worker")}))
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("endure.sdk")
    _propagator = TraceContextTextMapPropagator()


def enable_from_env() -> None:
    exporter = os.environ.get("ENDURE_OTEL", "").lower()
    if exporter in ("console", "otlp"):
        enable(exporter)


@contextlib.contextmanager
def attempt_span(headers: Mapping[str, str], service: str, handler: str, invocation_id: str,
                 attempt: int) -> Iterator[None]:
    if _tracer is None:
        yield
        return
    parent = _propagator.extract(carrier=dict(headers))
    with _tracer.start_as_current_span(f"{service}/{handler}", context=parent, attributes={
            "endure.invocation_id": invocation_id, "endure.attempt": attempt}):
        yield


@contextlib.contextmanager
def step_span(name: str, index: int) -> Iterator[None]:
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(f"run {name}", attributes={"endure.entry_index": index}):
        yield


def current_traceparent() -> dict[str, str]:
    """The current span's W3C headers (for a client inside a traced program); {} when tracing is off."""
    if _propagator is None:
        return {}
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier
