"""Shared fixtures: one compiled-module cache and one Sandbox pool for the whole sandbox test session.

Compiling CPython's wasm takes seconds; the cache dir is created once per session (or taken from
ENDURE_TEST_WASM_CACHE to reuse across sessions).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from endure.sandbox import Sandbox


@pytest.fixture(scope="session")
def wasm_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("ENDURE_TEST_WASM_CACHE")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    return tmp_path_factory.mktemp("wasm-cache")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sandbox(wasm_cache_dir: Path) -> AsyncIterator[Sandbox]:
    sb = Sandbox(pool_size=2, cache_dir=wasm_cache_dir, env_allowlist={"GREETING"})
    await sb.start()
    yield sb
    await sb.close()
