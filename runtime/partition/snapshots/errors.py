"""The snapshot errors: every message names the location (folder, URL or object) it is about."""

from __future__ import annotations

from endure.runtime.config import ConfigError


class SnapshotError(Exception):
    """A snapshot could not be written, read, listed or deleted; the message names where."""


class SnapshotNotFound(SnapshotError):
    """The snapshot a reference names is not in the snapshot store (deleted, or never written)."""


class SnapshotConfigError(ConfigError, SnapshotError):
    """A snapshot store URL is malformed or has an unknown scheme; the message quotes the value."""
