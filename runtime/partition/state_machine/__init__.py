"""The partition state machine, one module per concern (Restate's `state_machine/entries/*` as the model).

- `machine`: `StateMachine.apply` and the dispatch table from record kind to handler
- `batch`: `apply_batch`, the loop over a batch of log records (processor and tests)
- `lifecycle`: invoke, suspend, end, attempt failed, finish
- `entries`: appending journal entries, dispatching calls and sends
- `object_state`: state entries, the key's lock and inbox
- `timers`: fired timers and purging finished invocations
- `promises`: completions, awakeables, workflow promises
- `operator`: cancel, kill, pause, resume, purge
- `metering`: usage counters
- `leadership`: leader announcements and outbox truncation
- `shared`: what they all use (errors, status rows, sequences, timers, outbox)
"""

from endure.runtime.partition.state_machine.batch import BatchOutcome, RawRecord, apply_batch
from endure.runtime.partition.state_machine.machine import (
    HANDLERS,
    DispatchTableMismatch,
    Handler,
    StateMachine,
    check_dispatch_table,
)
from endure.runtime.partition.state_machine.shared import FINAL, LOCKING, Rejected, StateMachineConfig

__all__ = [
    "FINAL",
    "HANDLERS",
    "LOCKING",
    "BatchOutcome",
    "DispatchTableMismatch",
    "Handler",
    "RawRecord",
    "Rejected",
    "StateMachine",
    "StateMachineConfig",
    "apply_batch",
    "check_dispatch_table",
]
