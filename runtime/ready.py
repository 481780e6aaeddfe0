"""The line `endure serve` prints once it listens: how launchers (dev, demo, benchmarks, tests) learn
the ports it bound (it may be started on port 0)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(r"endure: ready ingress=(\S+) admin=(\S+)(?: metrics=(\S+))?(?: console=(\S+))?")


@dataclass(frozen=True, slots=True)
class ReadyLine:
    ingress: str
    admin: str
    metrics: str = ""
    console: str = ""  # the web console's HOST:PORT (http://); empty: off

    def format(self) -> str:
        metrics = f" metrics={self.metrics}" if self.metrics else ""
        console = f" console={self.console}" if self.console else ""
        return f"endure: ready ingress={self.ingress} admin={self.admin}{metrics}{console}"

    @classmethod
    def parse(cls, line: str | bytes) -> ReadyLine | None:
        text = line.decode(errors="replace") if isinstance(line, bytes) else line
        match = _PATTERN.search(text)
        if match is None:
            return None
        return cls(match.group(1), match.group(2), match.group(3) or "", match.group(4) or "")
