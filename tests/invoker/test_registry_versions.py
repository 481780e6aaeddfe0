"""The registry keeps every deployment version: the latest per service by order (first registration
or promotion), drains and removals, persisted in a real metadata store and loaded back, with
precise errors for names it cannot resolve."""

from __future__ import annotations

import pytest

from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.runtime.invoker.registry import (
    AmbiguousDeployment,
    RegistrationError,
    ServiceRegistry,
    UnknownDeployment,
)
from endure.runtime.log.metadata import LocalMetadataStore


def reg(version: str, *services: str, dep: str = "shop:app", schema: str = "") -> wpb.Register:
    out = wpb.Register(deployment_id=dep, deployment_version=version, worker_name="w", concurrency=4)
    for name in services or ("shop",):
        svc = out.services.add(name=name, kind=wpb.SERVICE)
        svc.handlers.add(name="order", kind=pb.SERVICE, input_schema_json=schema)
    return out


@pytest.fixture
async def store(tmp_path):
    s = await LocalMetadataStore.open(tmp_path / "meta")
    yield s
    await s.close()


async def test_the_last_new_version_is_latest_and_a_reconnect_does_not_roll_back(store) -> None:
    r = ServiceRegistry(store)
    await r.register(reg("v1"))
    await r.register(reg("v2"))
    assert r.latest("shop") == "shop:app@v2"
    await r.register(reg("v1"))  # a v1 worker connects again
    assert r.latest("shop") == "shop:app@v2"
    assert [v.ref for v in r.versions()] == ["shop:app@v1", "shop:app@v2"]
    assert r.handler("shop", "order", "shop:app@v1").deployment == "shop:app@v1"  # type: ignore[union-attr]
    assert r.handler("shop", "order").deployment == "shop:app@v2"  # type: ignore[union-attr]


async def test_promote_drain_remove_and_load_back(store) -> None:
    r = ServiceRegistry(store)
    await r.register(reg("v1", "shop", "cart"))
    await r.register(reg("v2", "shop"))
    assert r.latest("shop") == "shop:app@v2" and r.latest("cart") == "shop:app@v1"
    await r.promote("shop:app@v1")
    assert r.latest("shop") == "shop:app@v1"
    await r.drain("shop:app@v1")
    assert r.latest("shop") == "shop:app@v2" and r.latest("cart") is None and r.has_service("cart")
    assert r.latest("shop", excluding="shop:app@v2") is None  # v1 drains
    loaded = ServiceRegistry(store)
    await loaded.load()
    assert loaded.latest("shop") == "shop:app@v2" and loaded.latest("cart") is None
    assert loaded.version("shop:app@v1").stored.draining  # type: ignore[union-attr]
    await loaded.remove("shop:app@v2")
    again = ServiceRegistry(store)
    await again.load()
    assert [v.ref for v in again.versions()] == ["shop:app@v1"] and again.latest("shop") is None


async def test_names_resolve_to_one_version_or_fail_precisely(store) -> None:
    r = ServiceRegistry(store)
    await r.register(reg("3f2a11"))
    await r.register(reg("3f2b22"))
    await r.register(reg("9c1e", dep="other:app"))
    assert r.resolve("shop:app@3f2a11") == "shop:app@3f2a11"
    assert r.resolve("3f2a") == "shop:app@3f2a11" and r.resolve("9c") == "other:app@9c1e"
    with pytest.raises(AmbiguousDeployment, match="3f2"):
        r.resolve("3f2")
    with pytest.raises(UnknownDeployment, match="nosuch.*registered: "):
        r.resolve("nosuch")
    with pytest.raises(UnknownDeployment):
        await r.promote("shop:app@nosuch")


async def test_one_version_with_other_handlers_or_a_kind_change_is_refused(store) -> None:
    r = ServiceRegistry(store)
    await r.register(reg("v1"))
    with pytest.raises(RegistrationError, match="already registered"):
        await r.register(reg("v1", schema='{"type": "integer"}'))
    changed = reg("v2")
    changed.services[0].kind = wpb.VIRTUAL_OBJECT
    changed.services[0].handlers[0].kind = pb.EXCLUSIVE
    with pytest.raises(RegistrationError, match="cannot change kind"):
        await r.register(changed)
    with pytest.raises(RegistrationError, match="without a version"):
        await r.register(reg(""))


async def test_a_legacy_registration_loads_as_the_oldest_version(store) -> None:
    legacy = reg("old")
    legacy.ClearField("worker_name")
    legacy.ClearField("concurrency")
    await store.put("registry/deployment/shop:app", legacy.SerializeToString(), 0)
    r = ServiceRegistry(store)
    await r.load()
    assert r.latest("shop") == "shop:app@old"
    await r.register(reg("new"))
    assert r.latest("shop") == "shop:app@new"
