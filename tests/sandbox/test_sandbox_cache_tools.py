"""Module cache hardening, guest pinning, and the tool registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime
from pydantic import BaseModel

from endure.sandbox import Limits, Sandbox, Tool, ToolError, ToolRegistry
from endure.sandbox import guests as guests_mod
from endure.sandbox.engine import get_engine
from endure.sandbox.module_cache import CWASM_SUFFIX, MAC_SUFFIX, ModuleCache

WAT = '(module (func (export "_start")) (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'


def _add(mod: wasmtime.Module) -> int:
    store = wasmtime.Store(get_engine())
    store.set_fuel(10_000)
    store.set_epoch_deadline(1000)
    inst = wasmtime.Linker(get_engine()).instantiate(store, mod)
    return inst.exports(store)["add"](store, 2, 3)  # type: ignore[operator,no-any-return]


def test_cache_hit_and_corruption_recompiles(tmp_path: Path) -> None:
    wasm = bytes(wasmtime.wat2wasm(WAT))
    c1 = ModuleCache(get_engine(), tmp_path)
    assert _add(c1.load(wasm=wasm)) == 5
    assert c1.stats["misses"] == 1
    c2 = ModuleCache(get_engine(), tmp_path)
    assert _add(c2.load(wasm=wasm)) == 5
    assert c2.stats == {"hits": 1, "misses": 0, "rejected": 0}

    (entry,) = list(tmp_path.glob(f"*{CWASM_SUFFIX}"))
    raw = bytearray(entry.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    entry.write_bytes(bytes(raw))
    c3 = ModuleCache(get_engine(), tmp_path)
    assert _add(c3.load(wasm=wasm)) == 5
    assert c3.stats["rejected"] >= 1 and c3.stats["misses"] == 1

    entry.write_bytes(b"truncated")
    c4 = ModuleCache(get_engine(), tmp_path)
    assert _add(c4.load(wasm=wasm)) == 5 and c4.stats["rejected"] >= 1


def test_cache_refuses_files_it_did_not_write(tmp_path: Path) -> None:
    """A well-formed serialized module planted without our MAC (or with a forged one) is not loaded."""
    wasm = bytes(wasmtime.wat2wasm(WAT))
    cache = ModuleCache(get_engine(), tmp_path)
    name = cache.entry_name(__import__("hashlib").sha256(wasm).hexdigest())
    other = wasmtime.Module(
        get_engine(),
        wasmtime.wat2wasm('(module (func (export "add") (param i32 i32) (result i32) i32.const 99))'),
    )
    (tmp_path / f"{name}{CWASM_SUFFIX}").write_bytes(bytes(other.serialize()))
    (tmp_path / f"{name}{MAC_SUFFIX}").write_bytes(b"\0" * 32)
    assert _add(cache.load(wasm=wasm)) == 5
    assert cache.stats["rejected"] >= 1
    # a different cache key (another machine's secret) does not validate our entries either
    (tmp_path / ".key").write_bytes(b"k" * 32)
    c2 = ModuleCache(get_engine(), tmp_path)
    assert _add(c2.load(wasm=wasm)) == 5 and c2.stats["rejected"] >= 1


def test_cache_invalid_module_raises(tmp_path: Path) -> None:
    with pytest.raises(wasmtime.WasmtimeError):
        ModuleCache(get_engine(), tmp_path).load(wasm=b"\0asm\x01\0\0\0\x99")


def test_guest_files_are_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    py = guests_mod.python_guest()
    assert py.sha256 == guests_mod.PYTHON_WASM_SHA256 and py.path.name == "python-3.12.0.wasm"
    js = guests_mod.js_guest()
    assert js.sha256 == guests_mod.JS_WASM_SHA256
    monkeypatch.setattr(guests_mod, "_verified", {})
    monkeypatch.setattr(guests_mod, "PYTHON_WASM_SHA256", "0" * 64)
    with pytest.raises(guests_mod.GuestMissingError, match="expected 0000"):
        guests_mod._verify("python", py.path, guests_mod.PYTHON_WASM_SHA256, guests_mod.PYTHON_PACKAGE)
    with pytest.raises(guests_mod.GuestMissingError, match="missing"):
        guests_mod._verify("python", Path("/nonexistent/python.wasm"), "x", guests_mod.PYTHON_PACKAGE)


class AddIn(BaseModel):
    a: int
    b: int


class AddOut(BaseModel):
    total: int


ADD_PY = "import json, sys\nd = json.load(sys.stdin)\nprint(json.dumps({'total': d['a'] + d['b']}))"
ADD_JS = "const d = JSON.parse(std.in.readAsString()); console.log(JSON.stringify({total: d.a + d.b}))"


def test_tool_schema() -> None:
    tool = Tool("add", "Add two integers.", AddIn, AddOut, python=ADD_PY)
    schema = tool.json_schema()
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "add" and fn["description"] == "Add two integers."
    assert fn["parameters"]["type"] == "object"
    assert set(fn["parameters"]["properties"]) == {"a", "b"} and fn["parameters"]["required"] == ["a", "b"]
    with pytest.raises(ValueError):
        Tool("bad name!", "", AddIn, AddOut, python="")
    with pytest.raises(ValueError):
        Tool("two", "", AddIn, AddOut, python="", javascript="")


@pytest.mark.asyncio(loop_scope="session")
async def test_tool_registry_calls(sandbox: Sandbox) -> None:
    reg = ToolRegistry()
    reg.register(Tool("add", "Add.", AddIn, AddOut, python=ADD_PY))
    reg.register(Tool("add_js", "Add in JS.", AddIn, AddOut, javascript=ADD_JS))
    reg.register(Tool("liar", "Returns garbage.", AddIn, AddOut, python='print(\'{"total": "many"}\')'))
    reg.register(Tool("boom", "Fails.", AddIn, AddOut, python="raise ValueError('kaput')"))
    assert [s["function"]["name"] for s in reg.schemas()] == ["add", "add_js", "liar", "boom"]
    out = await reg.call(sandbox, "add", {"a": 2, "b": 40})
    assert isinstance(out, AddOut) and out.total == 42
    out = await reg.call(sandbox, "add_js", AddIn(a=1, b=1))
    assert out == AddOut(total=2)
    out = await reg.call(sandbox, "add", ToolRegistry.arguments('{"a": 5, "b": 5}'))
    assert out.total == 10  # type: ignore[attr-defined]
    with pytest.raises(ToolError, match="invalid input"):
        await reg.call(sandbox, "add", {"a": "x"})
    with pytest.raises(ToolError, match="invalid output"):
        await reg.call(sandbox, "liar", {"a": 1, "b": 2})
    with pytest.raises(ToolError, match="kaput"):
        await reg.call(sandbox, "boom", {"a": 1, "b": 2})
    with pytest.raises(ToolError, match="unknown tool"):
        await reg.call(sandbox, "nope", {})
    with pytest.raises(ToolError):
        ToolRegistry.arguments("[1]")


def test_limits_validation() -> None:
    with pytest.raises(ValueError):
        Limits(memory_bytes=10)
    with pytest.raises(ValueError):
        Limits(fuel=0)
    with pytest.raises(ValueError):
        Limits(bogus=1)  # type: ignore[call-arg]
