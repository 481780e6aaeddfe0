"""WorkerSession: the runtime's end of one worker's stream: what it serves and what to send it."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque

from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.proto.deployments import ref_text

_ids = itertools.count(1)


class SessionOverflow(Exception):
    """The worker stopped reading: its outgoing buffer is full and the session is dropped."""


class WorkerSession:
    def __init__(self, register: wpb.Register, max_buffered: int = 100_000) -> None:
        self.id = f"w{next(_ids)}"
        self.name = register.worker_name or self.id
        self.deployment_id = register.deployment_id
        self.deployment_version = register.deployment_version
        self.deployment = ref_text(pb.DeploymentRef(id=register.deployment_id, version=register.deployment_version))
        self.services = frozenset(s.name for s in register.services)
        self.concurrency = max(1, register.concurrency or 1)
        self.active = 0
        self.draining = False
        self.closed = False
        self.started = 0  # attempts started on this worker since it connected
        self.inflight: set[asyncio.Future[object]] = set()  # appends of this worker's frames not yet durable
        self._out: deque[wpb.RuntimeFrame] = deque()
        self._max_buffered = max_buffered
        self._ready = asyncio.Event()

    @property
    def free_slots(self) -> int:
        if self.closed or self.draining:
            return 0
        return self.concurrency - self.active

    def send(self, frame: wpb.RuntimeFrame) -> None:
        if self.closed:
            return
        if len(self._out) >= self._max_buffered:
            self.close()
            raise SessionOverflow(f"worker {self.name} is not reading its stream")
        self._out.append(frame)
        self._ready.set()

    async def next_message(self, max_frames: int = 512) -> wpb.RuntimeMessage | None:
        """Everything queued so far (up to max_frames), as one message; None once closed."""
        while not self._out:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        n = min(len(self._out), max_frames)
        msg = wpb.RuntimeMessage()
        msg.frames.extend(self._out.popleft() for _ in range(n))
        return msg

    def close(self) -> None:
        self.closed = True
        self._ready.set()
