"""The state machine's dispatch table must name exactly the record kinds of Envelope.body."""

from __future__ import annotations

import pytest

from endure.proto import records_pb2 as pb
from endure.runtime.partition.state_machine import (
    HANDLERS,
    DispatchTableMismatch,
    StateMachine,
    StateMachineConfig,
)

CONFIG = StateMachineConfig(partition=0, partitions=1)


def test_the_default_table_covers_every_record_kind() -> None:
    kinds = {f.name for f in pb.Envelope.DESCRIPTOR.oneofs_by_name["body"].fields}
    assert set(HANDLERS) == kinds
    StateMachine(CONFIG)


def test_a_table_missing_a_record_kind_fails_construction() -> None:
    table = {k: v for k, v in HANDLERS.items() if k != "kill"}
    with pytest.raises(DispatchTableMismatch) as err:
        StateMachine(CONFIG, handlers=table)
    assert (err.value.missing, err.value.unknown) == (["kill"], [])


def test_a_table_naming_an_unknown_record_kind_fails_construction() -> None:
    table = {**HANDLERS, "unknown_record": HANDLERS["kill"]}
    with pytest.raises(DispatchTableMismatch) as err:
        StateMachine(CONFIG, handlers=table)
    assert (err.value.missing, err.value.unknown) == ([], ["unknown_record"])
