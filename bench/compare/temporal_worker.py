"""The three benchmark handlers written with Temporal's Python SDK, and a worker process serving them.

  noop     a workflow that returns its input
  steps3   a workflow running three activities one after the other (value + 1 each)
  counter  an entity workflow per key (workflow id "counter-KEY") whose update handler `add`
           adds to its total and returns it: the closest match to a keyed virtual object with
           an exclusive handler (updates on one workflow run one at a time, durably in its history)

`python -m endure.bench.compare.temporal_worker --address 127.0.0.1:P --task-queue Q`
Self-contained (stdlib + temporalio) because Temporal re-imports workflow modules in its sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@workflow.defn(name="noop")
class Noop:
    @workflow.run
    async def run(self, value: int) -> int:
        return value


@activity.defn(name="step")
async def step(value: int) -> int:
    return value + 1


@workflow.defn(name="steps3")
class Steps3:
    @workflow.run
    async def run(self, value: int) -> int:
        for _ in range(3):
            value = await workflow.execute_activity(step, value, start_to_close_timeout=timedelta(seconds=60))
        return value


@workflow.defn(name="counter")
class Counter:
    def __init__(self) -> None:
        self.total = 0

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: False)  # an entity: lives until terminated
        return self.total

    @workflow.update(name="add")
    async def add(self, delta: int) -> int:
        self.total += delta
        return self.total


async def serve(address: str, task_queue: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    worker = Worker(client, task_queue=task_queue, workflows=[Noop, Steps3, Counter], activities=[step])
    await worker.run()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", default="bench")
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.task_queue))


if __name__ == "__main__":
    main()
