"""S3SnapshotStore (`s3://bucket/prefix`): snapshots as objects, through boto3.

Objects: `<prefix>/p<partition>/<lsn>-<created ms>-<random>.tar`, with the LSN, SHA-256 and data
format as object metadata. An S3 PUT (or multipart upload) is all-or-nothing, so an object that
lists is complete. The archive is staged in a local temporary file (next to the checkpoint) and
uploaded with boto3's transfer manager (multipart for large ones).

Where it connects: the endpoint is the URL's `?endpoint=` or else `ENDURE_S3_ENDPOINT_URL` (else
boto3's own: AWS_ENDPOINT_URL, or AWS itself); the region the URL's `?region=` or else
AWS_REGION / AWS_DEFAULT_REGION, else us-east-1; credentials come from boto3's standard chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, profiles, instance roles). The
bucket must exist. boto3 is an optional dependency (`pip install 'endure[cluster]'`).
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from endure.runtime.data_format import CURRENT_VERSION

from . import archive
from .base import SnapshotRef, blocking, now, object_name, parse_name
from .errors import SnapshotConfigError, SnapshotError, SnapshotNotFound

ENDPOINT_ENV = "ENDURE_S3_ENDPOINT_URL"
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3SnapshotStore:
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None) -> None:
        if not bucket:
            raise SnapshotConfigError("an S3 snapshot store needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url if endpoint_url is not None else (os.environ.get(ENDPOINT_ENV) or None)
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        base = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.url = base + (f"?endpoint={self.endpoint_url}" if self.endpoint_url else "")
        self._client: Any = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> S3SnapshotStore:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise SnapshotConfigError(f"snapshot store URL {url!r} is not s3://bucket/prefix")
        query = parse_qs(parts.query)
        unknown = set(query) - {"endpoint", "region"}
        if unknown:
            raise SnapshotConfigError(f"snapshot store URL {url!r}: unknown parameter(s) {sorted(unknown)} "
                                      f"(known: endpoint, region)")
        endpoint = query.get("endpoint", [None])[-1]
        region = query.get("region", [None])[-1]
        return cls(parts.netloc, parts.path, endpoint_url=endpoint, region=region)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _s3(self) -> Any:
        """The boto3 client, made on first use (in a worker thread: making one takes a while)."""
        with self._client_lock:
            if self._client is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError as exc:
                    raise SnapshotError(f"the S3 snapshot store {self.url} needs boto3: "
                                        f"pip install 'endure[cluster]'") from exc
                config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10,
                                read_timeout=60, s3={"addressing_style": "path"} if self.endpoint_url else None)
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config)
            return self._client

    # ------------------------------------------------------------------ put

    async def put(self, partition: int, lsn: int, local_checkpoint_dir: Path) -> SnapshotRef:
        return await blocking(self._put, partition, lsn, Path(local_checkpoint_dir))

    def _put(self, partition: int, lsn: int, checkpoint: Path) -> SnapshotRef:
        created = now()
        key = object_name(partition, lsn, created)
        where = self._location(key)
        fd, tmp_name = tempfile.mkstemp(prefix=".snapshot-upload-", suffix=".tar", dir=checkpoint.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                size, sha = archive.pack(checkpoint, f)
            extra = {"Metadata": {"lsn": str(lsn), "sha256": sha, "format": str(CURRENT_VERSION)}}
            try:
                self._s3().upload_file(str(tmp), self.bucket, self._key(key), ExtraArgs=extra)
            except Exception as exc:
                raise _error(exc, f"uploading snapshot of partition {partition} at LSN {lsn} to {where}") from exc
        except OSError as exc:
            raise SnapshotError(f"staging snapshot of partition {partition} at LSN {lsn} for {where} in "
                                f"{tmp}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return SnapshotRef(partition, lsn, key, where, created, size, sha, CURRENT_VERSION)

    # ------------------------------------------------------------------ get / delete / list

    async def get(self, ref: SnapshotRef, into_dir: Path) -> None:
        await blocking(self._get, ref, Path(into_dir))

    def _get(self, ref: SnapshotRef, into_dir: Path) -> None:
        where = self._location(ref.key)
        expected = ref.sha256
        s3 = self._s3()
        if expected is None:  # a reference from list(): the checksum is in the object's metadata
            try:
                head = s3.head_object(Bucket=self.bucket, Key=self._key(ref.key))
            except Exception as exc:
                raise _error(exc, f"reading snapshot {where}") from exc
            expected = head.get("Metadata", {}).get("sha256")
        into_dir.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".snapshot-download-", suffix=".tar", dir=into_dir.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                s3.download_file(self.bucket, self._key(ref.key), str(tmp))
            except Exception as exc:
                raise _error(exc, f"downloading snapshot {where}") from exc
            archive.unpack(tmp, into_dir, expected, where)
        finally:
            tmp.unlink(missing_ok=True)

    async def delete(self, ref: SnapshotRef) -> None:
        await blocking(self._delete, ref)

    def _delete(self, ref: SnapshotRef) -> None:
        try:
            self._s3().delete_object(Bucket=self.bucket, Key=self._key(ref.key))
        except Exception as exc:
            err = _error(exc, f"deleting snapshot {self._location(ref.key)}")
            if not isinstance(err, SnapshotNotFound):
                raise err from exc

    async def list(self, partition: int) -> list[SnapshotRef]:
        return await blocking(self._list, partition)

    def _list(self, partition: int) -> list[SnapshotRef]:
        folder = self._key(f"p{partition}/")
        out = []
        try:
            pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(folder):]
                    parsed = parse_name(name)
                    if parsed is None:
                        continue
                    lsn, created = parsed
                    key = f"p{partition}/{name}"
                    out.append(SnapshotRef(partition, lsn, key, self._location(key), created, int(obj["Size"])))
        except Exception as exc:
            raise _error(exc, f"listing snapshots of partition {partition} under s3://{self.bucket}/{folder}") from exc
        return sorted(out, key=lambda r: (r.lsn, r.created_at, r.key))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await blocking(client.close)

    def __repr__(self) -> str:
        return f"S3SnapshotStore({self.url!r})"


def _error(exc: Exception, what: str) -> SnapshotError:
    """A typed error for a boto3 / botocore failure: SnapshotNotFound for a missing object."""
    if isinstance(exc, SnapshotError):
        return exc
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = str(error.get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or ""
        if code in _MISSING:
            return SnapshotNotFound(f"{what}: it does not exist")
        detail = f"{code} {message}".strip() or f"HTTP {status}"
        return SnapshotError(f"{what}: {detail}")
    return SnapshotError(f"{what}: {type(exc).__name__}: {exc}")
