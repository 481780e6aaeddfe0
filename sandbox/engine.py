"""One wasmtime Engine per process, with fuel and epoch interruption, plus its epoch ticker.

Fuel bounds work deterministically; epochs bound wall time (fuel does not advance while the
guest sits in a host call). The ticker also runs watchdogs (scratch-dir quotas) and can
force the current run's epoch deadline so the guest traps at its next check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib import metadata

import wasmtime

TICK_S = 0.010  # one epoch = 10 ms
MAX_WASM_STACK = 1 << 20  # 1 MiB of wasm stack: recursion bombs trap quickly

_ENGINE: wasmtime.Engine | None = None
_TICKER: EpochTicker | None = None
_LOCK = threading.Lock()


def engine_settings() -> dict[str, object]:
    """The settings that change compiled code; part of the module-cache key."""
    return {
        "wasmtime": metadata.version("wasmtime"),
        "consume_fuel": True,
        "epoch_interruption": True,
        "max_wasm_stack": MAX_WASM_STACK,
        "cranelift_opt_level": "speed",
    }


def _make_engine() -> wasmtime.Engine:
    cfg = wasmtime.Config()
    cfg.consume_fuel = True
    cfg.epoch_interruption = True
    cfg.max_wasm_stack = MAX_WASM_STACK
    cfg.cranelift_opt_level = "speed"
    return wasmtime.Engine(cfg)


class EpochTicker(threading.Thread):
    """Increments the engine epoch every TICK_S and runs registered watchdogs."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        super().__init__(name="endure-epoch", daemon=True)
        self.engine = engine
        self.epoch = 0  # our count of increments (the engine starts at 0)
        self._lock = threading.Lock()
        self._watchdogs: dict[int, Callable[[], bool]] = {}
        self._next_id = 0

    def run(self) -> None:
        while True:
            time.sleep(TICK_S)
            with self._lock:
                self.engine.increment_epoch()
                self.epoch += 1
                dogs = list(self._watchdogs.items())
            for wid, dog in dogs:
                try:
                    if dog():
                        self.remove(wid)
                except Exception:  # a watchdog must never kill the ticker
                    self.remove(wid)

    def add(self, dog: Callable[[], bool]) -> int:
        """Register a check run every tick; it returns True when done (it is then dropped)."""
        with self._lock:
            self._next_id += 1
            self._watchdogs[self._next_id] = dog
            return self._next_id

    def remove(self, wid: int) -> None:
        with self._lock:
            self._watchdogs.pop(wid, None)

    def force(self, ticks: int) -> None:
        """Advance the epoch by `ticks` at once, so deadlines up to that far trap now."""
        with self._lock:
            for _ in range(ticks + 1):
                self.engine.increment_epoch()
                self.epoch += 1


def get_engine() -> wasmtime.Engine:
    """The process-wide engine (created, and its ticker started, on first use)."""
    global _ENGINE, _TICKER
    with _LOCK:
        if _ENGINE is None:
            _ENGINE = _make_engine()
            _TICKER = EpochTicker(_ENGINE)
            _TICKER.start()
        return _ENGINE


def get_ticker() -> EpochTicker:
    get_engine()
    assert _TICKER is not None
    return _TICKER
