"""App.deployment_version identifies the code: explicit version, then the environment, then a hash
of the handlers' definitions and the source of the modules that define them."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sdk_fake_runtime import FakeRuntime

from endure.sdk import App, Context, Service

MODULE = """\
from endure.sdk import App, Context, Service

svc = Service("shop")


@svc.handler()
async def charge(ctx: Context, amount: int) -> str:
    return {body!r}


app = App([svc])
"""


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENDURE_DEPLOYMENT_VERSION", raising=False)


@pytest.fixture
def load(tmp_path: Path) -> Iterator[object]:
    loaded: list[str] = []

    def go(file_name: str, body: str) -> App:
        path = tmp_path / file_name
        path.write_text(textwrap.dedent(MODULE.format(body=body)))
        name = f"endure_test_version_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loaded.append(name)
        spec.loader.exec_module(module)
        app: App = module.app
        return app

    yield go
    for name in loaded:
        sys.modules.pop(name, None)


def test_version_changes_with_the_code_not_only_the_signatures(load) -> None:  # type: ignore[no-untyped-def]
    v1, v2 = load("shop_v1.py", "charged"), load("shop_v2.py", "charged twice")
    assert v1.service_defs() == v2.service_defs()  # same signatures, schemas, policies
    assert v1.deployment_version() != v2.deployment_version()
    assert len(v1.deployment_version()) == 16 and int(v1.deployment_version(), 16) >= 0


def test_version_is_the_same_for_the_same_code(load) -> None:  # type: ignore[no-untyped-def]
    a = load("shop_a.py", "charged")
    assert a.deployment_version() == a.deployment_version()
    assert a.deployment_version() == App(a.services).deployment_version()
    # The same source at another path (another checkout, another machine): the same version.
    assert load("shop_b.py", "charged").deployment_version() == a.deployment_version()


def test_explicit_version_then_env_override_the_hash(load, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    app = load("shop_env.py", "charged")
    hashed = app.deployment_version()
    monkeypatch.setenv("ENDURE_DEPLOYMENT_VERSION", "2024.06.01-rc1")
    assert app.deployment_version() == "2024.06.01-rc1"
    assert App(app.services, version="v2+build.7").deployment_version() == "v2+build.7"  # wins over env
    monkeypatch.setenv("ENDURE_DEPLOYMENT_VERSION", "")
    assert app.deployment_version() == hashed  # empty: unset
    monkeypatch.setenv("ENDURE_DEPLOYMENT_VERSION", "not ok")
    with pytest.raises(ValueError, match="ENDURE_DEPLOYMENT_VERSION is 1-64 letters"):
        app.deployment_version()


def test_explicit_version_is_validated() -> None:
    svc = Service("v")

    @svc.handler()
    async def h(ctx: Context) -> None: ...

    for bad in ("", "x" * 65, "v 1", "v1/2", "ü"):
        with pytest.raises(ValueError, match="1-64 letters, digits"):
            App([svc], version=bad)
    with pytest.raises(TypeError, match="str, not int"):
        App([svc], version=3)  # type: ignore[arg-type]
    assert App([svc], version="A-z_0.9+x" + "y" * 55).version is not None


async def test_worker_registers_the_version_it_is_given(runtime: FakeRuntime, start_worker) -> None:  # type: ignore[no-untyped-def]
    svc = Service("reg")

    @svc.handler()
    async def h(ctx: Context) -> None: ...

    app = App([svc], version="app-says")
    await start_worker(app)
    assert (await runtime.session()).register.deployment_version == "app-says"
    await start_worker(app, deployment_version="operator-says")
    assert (await runtime.session()).register.deployment_version == "operator-says"
    with pytest.raises(ValueError, match="1-64 letters"):
        await start_worker(app, deployment_version="bad version")
