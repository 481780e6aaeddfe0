"""The data directory's format version, and the migrations that bring an older one up to date.

A data directory records its format in a small `FORMAT` file, written when the directory is
created. Opening one checks it before anything else touches the data: a newer format than this
code knows is refused (`DataFormatTooNew`), rather than read with the wrong rules; an older one is
migrated one version at a time by the ordered list `MIGRATIONS` (version N → N+1, like Restate's
store migrations), the file restamped after each step, so a crash mid-way resumes at the step
that did not finish. Every migration is idempotent for that reason. The steps that rewrite
partition stores are in `endure.runtime.partition.migrations`, beside the store's keys.

Versions:
  1. before versioning: a data directory without a `FORMAT` file.
  2. the partition store's running index (`keys.RUNNING`, one row per RUNNING invocation): what a
     new leader scans to restart running invocations.
  3. `InvocationStatus.attempts` counts the attempts started (it counted failed ones), the failed
     ones have a row of their own (`keys.FAILED_ATTEMPTS`, what retry policies count), and
     cancellations and kills carry their `Failure.cause`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from endure.runtime.config import ConfigError
from endure.runtime.partition import migrations

log = logging.getLogger("endure.data_format")

FORMAT_FILE = "FORMAT"
UNVERSIONED = 1
# What a data directory holds once it has data; an empty directory (none of these) is new.
_DATA_ENTRIES = ("log", "metadata", "partitions")


class DataFormatError(ConfigError):
    """The data directory's format record is unreadable, or its format cannot be opened."""


class DataFormatTooNew(DataFormatError):
    """The data directory was written by a newer Endure, with a format this one does not know."""

    def __init__(self, data_dir: Path, found: int, supported: int) -> None:
        super().__init__(f"{data_dir} has data format version {found}, written by a newer Endure; this Endure "
                         f"reads data format versions up to {supported}: run a newer Endure on it")
        self.found = found
        self.supported = supported


@dataclass(frozen=True)
class Migration:
    """Rewrites a data directory of format `from_version` into format `from_version + 1`."""

    from_version: int
    what: str
    run: Callable[[Path], None]


MIGRATIONS: list[Migration] = [
    Migration(1, "build the partition stores' running index",
              migrations.each_store(migrations.build_running_index, "running invocations indexed:")),
    Migration(2, "count attempts started, keep failed attempts apart, type cancellations and kills",
              migrations.each_store(migrations.type_store, "invocation statuses rewritten:")),
    Migration(3, "index invocations by creation time (the web console lists the newest first)",
              migrations.each_store(migrations.build_created_index, "invocations indexed by creation time:")),
]
CURRENT_VERSION = UNVERSIONED + len(MIGRATIONS)


def read_version(data_dir: Path) -> int | None:
    """The data directory's format version; UNVERSIONED for data without a record; None when new."""
    path = data_dir / FORMAT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        has_data = any((data_dir / name).exists() for name in _DATA_ENTRIES)
        return UNVERSIONED if has_data else None
    try:
        version = json.loads(text)["version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(f"{path} is not a data format record ({text[:80]!r})") from exc
    if not isinstance(version, int) or isinstance(version, bool) or version < UNVERSIONED:
        raise DataFormatError(f"{path} names no valid data format version ({version!r})")
    return version


def write_version(data_dir: Path, version: int) -> None:
    """Stamp the data directory with `version`, atomically and durably (write, fsync, rename)."""
    path = data_dir / FORMAT_FILE
    tmp = path.with_name(FORMAT_FILE + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps({"version": version}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_data_dir(data_dir: Path) -> int:
    """Check the data directory's format before anything opens it: stamp a new one, migrate an
    older one, refuse a newer one (`DataFormatTooNew`). Returns the version it was found at."""
    data_dir.mkdir(parents=True, exist_ok=True)
    found = read_version(data_dir)
    if found is None:
        write_version(data_dir, CURRENT_VERSION)
        return CURRENT_VERSION
    if found > CURRENT_VERSION:
        raise DataFormatTooNew(data_dir, found, CURRENT_VERSION)
    for migration in MIGRATIONS[found - UNVERSIONED:]:
        log.info("%s: migrating data format %d → %d: %s", data_dir, migration.from_version,
                 migration.from_version + 1, migration.what)
        migration.run(data_dir)
        write_version(data_dir, migration.from_version + 1)
    return found
