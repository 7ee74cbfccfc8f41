"""The document store: bytes that do not belong in the relational database
(rendered documents, about 450 KB a referral), kept by key in a folder or in
S3-compatible object storage.

``REFFLOW_DOCUMENT_STORE`` chooses where:

- ``file:PATH`` (the default: ``file:<data dir>/document-store``): one file a
  key under ``PATH``, written atomically (a temporary file in the same
  folder, fsync, rename, fsync of the folder), readable by its owner only;
- ``s3://BUCKET/PREFIX``: objects in an S3 bucket through boto3, at AWS or at
  any S3-compatible server (``REFFLOW_DOCUMENT_STORE_ENDPOINT_URL``).

Keys are made of ids and hashes only (never patient data). ``get_checked``
compares the bytes with the SHA-256 the database recorded: a blob that
changed is refused (``BlobCorrupt``), never served.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

log = logging.getLogger("refflow.blobstore")

KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


class BlobMissing(LookupError):
    """No blob under this key."""


class BlobCorrupt(Exception):
    """The blob's bytes are not the ones the database recorded (changed or damaged)."""


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...  # BlobMissing when absent

    def delete(self, key: str) -> None: ...  # absent: nothing to do


def get_checked(store: BlobStore, key: str, sha256: str) -> bytes:
    """The blob under ``key``, checked against the SHA-256 recorded for it."""
    data = store.get(key)
    if hashlib.sha256(data).hexdigest() != sha256:
        log.error("blob %s does not match its recorded SHA-256: refused", key)
        raise BlobCorrupt(key)
    return data


def document_key(referral_id: str, document_id: str, sha256: str) -> str:
    """A referral document's key: a new one whenever its bytes change."""
    return f"documents/{referral_id}/{document_id}-{sha256}"


def fax_key(fax_id: str) -> str:
    """A received fax's image (never changes)."""
    return f"received-faxes/{fax_id}"


def read(store: BlobStore, key: str | None, sha256: str, legacy: bytes | None = None) -> bytes:
    """The bytes of a row that names its blob by ``key``, or, for a row written
    before the store, those it holds (``legacy``); checked against ``sha256``."""
    if key is not None:
        return get_checked(store, key, sha256)
    if legacy is None:
        raise BlobMissing("a row with neither a store key nor bytes")
    if hashlib.sha256(legacy).hexdigest() != sha256:
        log.error("a row's bytes do not match its recorded SHA-256: refused")
        raise BlobCorrupt("row")
    return legacy


# -- blobs and the transaction that records them -------------------------------------
#
# A blob is written before the row naming it commits. If that transaction rolls
# back, the new blob is deleted; a blob the row named before (a document
# rendered again) is deleted once the transaction committed. A process that
# dies between the write and the commit leaves its blob behind (an orphan:
# nothing names it, nothing serves it).

PENDING = "refflow.blobs"  # session.info: (delete after commit, delete after rollback)


def put_in(session, store: BlobStore, key: str, data: bytes) -> None:
    """Write the blob a row of ``session`` is about to name; deleted again if
    the transaction rolls back."""
    store.put(key, data)
    _pending(session, store)[1].append(key)


def delete_after_commit(session, store: BlobStore, key: str) -> None:
    """Delete the blob once ``session``'s transaction (which stops naming it) committed."""
    _pending(session, store)[0].append(key)


def _pending(session, store: BlobStore) -> tuple[list[str], list[str]]:
    from sqlalchemy import event

    pending = session.info.get(PENDING)
    if pending is None:
        pending = session.info[PENDING] = ([], [])

        def after_commit(s) -> None:
            _delete_all(store, s.info.pop(PENDING, ([], []))[0])

        def after_rollback(s) -> None:
            _delete_all(store, s.info.pop(PENDING, ([], []))[1])

        event.listen(session, "after_commit", after_commit, once=True)
        event.listen(session, "after_rollback", after_rollback, once=True)
    return pending


def _delete_all(store: BlobStore, keys: list[str]) -> None:
    for key in keys:
        try:
            store.delete(key)
        except Exception as exc:  # noqa: BLE001 - an orphan blob is no error for the caller
            log.warning("blob %s not deleted (%s): left as an orphan", key, type(exc).__name__)


def _checked_key(key: str) -> str:
    if not KEY.fullmatch(key) or ".." in key:
        raise ValueError("a blob key is ids and hashes joined by '/'")
    return key


class FileStore:
    """One file a key under ``root``; folders 0700, files 0600."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / _checked_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        for _ in range(2):  # a concurrent delete may remove the emptied folder once
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
                break
            except FileNotFoundError:
                continue
        else:
            raise FileNotFoundError(path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_folder(path.parent)

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(key) from None

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        try:  # the referral's folder once its last document went
            path.parent.rmdir()
        except OSError:
            pass


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Store:
    """Objects under ``prefix`` in ``bucket`` (boto3's S3 client; credentials
    from the settings, else boto3's standard chain: ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``, the shared credentials file, an instance role)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None,
                 server_side_encryption: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.extra = {"ServerSideEncryption": server_side_encryption} \
            if server_side_encryption else {}
        # bounded waits: a store that does not answer fails the step, which is retried
        # (another S3-compatible server is addressed by path: bucket names in host
        # names need DNS entries such servers seldom have)
        config = Config(connect_timeout=5, read_timeout=30,
                        retries={"max_attempts": 3, "mode": "standard"},
                        s3={"addressing_style": "path" if endpoint_url else "auto"})
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None, config=config)

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, {self.prefix!r})"

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + _checked_key(key),
                               Body=data, **self.extra)

    def get(self, key: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket,
                                            Key=self.prefix + _checked_key(key))
        except self.client.exceptions.NoSuchKey:
            raise BlobMissing(key) from None
        with answer["Body"] as body:
            return body.read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + _checked_key(key))


_stores: dict[tuple, BlobStore] = {}


def store_for(settings) -> BlobStore:
    """The process-wide store the settings name (one S3 client per store)."""
    url = settings.document_store_url
    s3 = (settings.document_store_endpoint_url, settings.document_store_region,
          settings.document_store_access_key_id, settings.document_store_secret_access_key,
          settings.document_store_sse)
    key = (url, *s3) if url.startswith("s3:") else (url,)
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = open_store(url, *s3)
    return store


def open_store(url: str, endpoint_url: str = "", region: str = "", access_key_id: str = "",
               secret_access_key: str = "", sse: str = "") -> BlobStore:
    """A store from a ``file:PATH`` or ``s3://BUCKET/PREFIX`` URL (``ValueError``
    for anything else)."""
    if url.startswith("file:"):
        path = url[len("file:"):]
        if not path:
            raise ValueError("file: needs a folder, e.g. file:/var/lib/refflow/document-store")
        return FileStore(Path(path))
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError("s3:// needs a bucket, e.g. s3://refflow-documents/clinic")
        return S3Store(parts.netloc, parts.path, endpoint_url=endpoint_url, region=region,
                       access_key_id=access_key_id, secret_access_key=secret_access_key,
                       server_side_encryption=sse)
    raise ValueError("use file:PATH or s3://BUCKET/PREFIX")
