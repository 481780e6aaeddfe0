"""Definitions, serde and what a worker registers."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from pydantic import BaseModel
from sdk_fake_runtime import FakeRuntime

from endure.proto import records_pb2, worker_pb2
from endure.sdk import (
    App,
    Context,
    ObjectContext,
    ObjectSharedContext,
    RetryPolicy,
    SerdeError,
    Service,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)
from endure.sdk.serde import serde_for


class Pair(BaseModel):
    a: int
    b: int


@dataclasses.dataclass
class Point:
    x: float
    y: float


tools = Service("tools", retry=RetryPolicy(max_attempts=5))


@tools.handler(
    retry=RetryPolicy(initial_interval=timedelta(milliseconds=50), max_attempts=3, on_exhausted="pause")
)
async def add(ctx: Context, pair: Pair) -> int:
    return pair.a + pair.b


@tools.handler(inactivity_timeout=timedelta(seconds=2))
async def mirror(ctx: Context, p: Point) -> Point:
    return Point(p.y, p.x)


@tools.handler()
async def noinput(ctx: Context) -> None:
    return None


agent = VirtualObject("agent")


@agent.handler()
async def chat(ctx: ObjectContext, msg: str) -> str:
    return msg


@agent.handler(kind="shared")
async def history(ctx: ObjectSharedContext) -> list[str]:
    return []


signup = Workflow("signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> bool:
    return True


@signup.handler()
async def confirm(ctx: WorkflowSharedContext, code: str) -> None:
    return None


app = App([tools, agent, signup])


def test_serde_models_dataclasses_primitives() -> None:
    assert serde_for(Pair).dumps(Pair(a=1, b=2)) == b'{"a":1,"b":2}'
    assert serde_for(Pair).loads(b'{"a":1,"b":2}') == Pair(a=1, b=2)
    assert serde_for(Point).loads(serde_for(Point).dumps(Point(1.5, 2))) == Point(1.5, 2.0)
    assert serde_for(list[int]).loads(b"[1,2]") == [1, 2]
    assert serde_for(dict[str, float]).dumps({"a": 1.5}) == b'{"a":1.5}'
    assert serde_for(int | None).loads(b"") is None
    assert serde_for(str).loads(b'"x"') == "x"
    with pytest.raises(SerdeError, match=r"invalid JSON for Pair: b: Field required"):
        serde_for(Pair).loads(b'{"a":1}')
    with pytest.raises(SerdeError, match="cannot serialize"):
        serde_for(int).dumps(object())
    from typing import Any

    assert serde_for(Any).dumps(Pair(a=1, b=2)) == b'{"a":1,"b":2}'  # untyped values still serialize
    assert serde_for(Any).dumps(Point(1, 2)) == b'{"x":1,"y":2}'


def test_handler_kinds_and_schemas() -> None:
    defs = {sd.name: sd for sd in app.service_defs()}
    assert defs["tools"].kind == worker_pb2.SERVICE
    assert defs["agent"].kind == worker_pb2.VIRTUAL_OBJECT
    assert defs["signup"].kind == worker_pb2.WORKFLOW
    kinds = {(sd.name, h.name): h.kind for sd in defs.values() for h in sd.handlers}
    assert kinds == {
        ("tools", "add"): records_pb2.SERVICE,
        ("tools", "mirror"): records_pb2.SERVICE,
        ("tools", "noinput"): records_pb2.SERVICE,
        ("agent", "chat"): records_pb2.EXCLUSIVE,
        ("agent", "history"): records_pb2.SHARED,
        ("signup", "run"): records_pb2.WORKFLOW_RUN,
        ("signup", "confirm"): records_pb2.WORKFLOW_SHARED,
    }
    h = {h.name: h for h in defs["tools"].handlers}
    add_in = json.loads(h["add"].input_schema_json)
    assert add_in["properties"] == {
        "a": {"title": "A", "type": "integer"},
        "b": {"title": "B", "type": "integer"},
    }
    assert json.loads(h["add"].output_schema_json) == {"type": "integer"}
    assert json.loads(h["mirror"].output_schema_json)["required"] == ["x", "y"]
    assert h["noinput"].input_schema_json == ""
    assert json.loads(h["noinput"].output_schema_json) == {"type": "null"}
    assert h["add"].retry.max_attempts == 3 and h["add"].retry.pause_on_exhaustion
    assert h["add"].retry.initial_interval_ms == 50
    assert h["mirror"].retry.max_attempts == 5  # the service's default policy
    assert h["mirror"].inactivity_timeout_ms == 2000
    assert h["noinput"].inactivity_timeout_ms == 60000


def test_deployment_version_tracks_schemas() -> None:
    v1 = app.deployment_version()
    assert v1 == App([tools, agent, signup]).deployment_version()
    other = Service("tools")

    @other.handler(name="add")
    async def add2(ctx: Context, pair: Pair) -> str:
        return ""

    assert App([other, agent, signup]).deployment_version() != v1


def test_definition_errors() -> None:
    s = Service("s")
    with pytest.raises(TypeError, match="async"):
        s.handler()(lambda ctx: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no handlers"):
        App([s])
    w = Workflow("w")

    @w.handler()
    async def sig(ctx: WorkflowSharedContext) -> None: ...

    with pytest.raises(ValueError, match="no @main"):
        App([w])
    with pytest.raises(ValueError, match="exclusive"):
        VirtualObject("v").handler(kind="other")  # type: ignore[arg-type]


async def test_register_frame(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app, concurrency=7, worker_name="w7")
    s = await runtime.session()
    r = s.register
    assert r.deployment_id == "tests:app" and r.concurrency == 7 and r.worker_name == "w7"
    assert r.deployment_version == app.deployment_version()
    assert [sd.name for sd in r.services] == ["tools", "agent", "signup"]
    # a typed round trip through the worker: pydantic in, int out; dataclass in and out
    s.start("tools", "add", b'{"a":2,"b":3}')
    out = await s.expect_output(0)
    assert out.value == b"5"
    s.start("tools", "mirror", b'{"x":1,"y":2}')
    out = await s.expect_output(0)
    assert json.loads(out.value) == {"x": 2.0, "y": 1.0}
