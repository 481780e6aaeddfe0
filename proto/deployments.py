"""Deployment references as text: "id@version", the one spelling the runtime, CLI and SDK share."""

from __future__ import annotations

from endure.proto import records_pb2 as pb


class InvalidDeploymentRef(ValueError):
    """Text that is not "id@version"."""


def ref_text(ref: pb.DeploymentRef) -> str:
    """ "id@version", or "" for an unset reference (an invocation that has not run yet)."""
    return f"{ref.id}@{ref.version}" if ref.id or ref.version else ""


def parse_ref(text: str) -> pb.DeploymentRef:
    """The reference "id@version" names (the id may itself hold '@': the version follows the last one)."""
    dep_id, sep, version = text.rpartition("@")
    if not sep or not dep_id or not version:
        raise InvalidDeploymentRef(f"a deployment version is ID@VERSION, not {text!r}")
    return pb.DeploymentRef(id=dep_id, version=version)


def short(text: str, width: int = 12) -> str:
    """ "id@version" with the version cut to `width` characters, for tables and messages."""
    dep_id, _, version = text.rpartition("@")
    return f"{dep_id}@{version[:width]}…" if len(version) > width else text
