"""Soak (outside the default run: `pytest -m soak tests/integration/test_e2e_soak.py`): kill -9 the
worker and the runtime again and again while multi-step invocations run; every invocation
completes, and no acknowledged step ever runs again.

ENDURE_SOAK_ROUNDS (default 20) sets the number of kills.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest
from cluster import Cluster, rerun_acknowledged_steps

from endure.sdk.client import Client, RequestError

APP = "e2eapp:app"


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_kill9_worker_and_runtime_in_a_loop(tmp_path: Path) -> None:
    rounds = int(os.environ.get("ENDURE_SOAK_ROUNDS", "20"))
    rng = random.Random(int(os.environ.get("ENDURE_SOAK_SEED", "1")))
    cluster = Cluster(tmp_path, env={"ENDURE_TEST_DIR": str(tmp_path)})
    invocations: dict[str, str] = {}
    try:
        cluster.start_runtime()
        cluster.start_worker(APP, name="w0")
        for r in range(rounds):
            async with Client(cluster.ingress) as client:
                for j in range(10):
                    tag = f"r{r}i{j}"
                    while True:  # a send may meet a runtime that is still starting
                        try:
                            invocations[tag] = await client.send("e2e/multistep", tag, idempotency_key=tag)
                            break
                        except RequestError:
                            await asyncio.sleep(0.1)
            await asyncio.sleep(rng.uniform(0.05, 0.5))  # picks the moment of the crash, not a race fix
            if rng.random() < 0.5:
                for w in cluster.workers:
                    if w.alive():
                        w.kill9()
                cluster.start_worker(APP, name=f"w{r + 1}")
            else:
                cluster.runtime.kill9()
                cluster.start_runtime()
                cluster.wait_for_workers(1)
        async with Client(cluster.ingress) as client:
            results = await asyncio.gather(*(client.attach(inv, timeout=300) for inv in invocations.values()))
        assert all(res == [f"s{i}" for i in range(5)] for res in results)
        rerun = rerun_acknowledged_steps(tmp_path, invocations)
        assert not rerun, f"acknowledged steps ran again: {rerun}"
        for inv in list(invocations.values())[:20]:
            names = [e.name for e in cluster.describe(inv).journal if e.WhichOneof("kind") == "run"]
            assert names == [f"step{i}" for i in range(5)]
    finally:
        cluster.stop()
