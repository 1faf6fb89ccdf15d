"""Archives in an S3-compatible bucket: the same keys and the same crash-safe protocol as local disk.

A key ``archive/2025/01/x.tar.gz`` is the object ``{prefix}/archive/2025/01/x.tar.gz``. A write
streams a multipart upload to the temporary object ``{prefix}/.partial/{key}`` while hashing it
(one part in memory at a time, nothing on local disk); the upload is completed only when the
writer is closed without an error and aborted otherwise. Publishing is a server-side copy of the
temporary object to its final key, checked by size, then the temporary object is deleted: a final
key only ever holds bytes that were written whole. A crash leaves a temporary object or an
unfinished multipart upload, which ``partials()`` lists and ``abort_partial()`` removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError, PartialCredentialsError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from app.lifecycle.naming import safe_member_path
from app.lifecycle.store import ROOTS, StoreError
from app.lifecycle.streams import STREAM_BLOCK

PARTIAL_ROOT = ".partial"
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's least part size (all but the last part)
PART_SIZE = 8 * 1024 * 1024
# CopyObject copies at most 5 GB in one request; larger objects are copied part by part.
COPY_OBJECT_LIMIT = 5 * 1024**3
COPY_PART_SIZE = 512 * 1024 * 1024

_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AccessDenied"}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


def s3_client(
    endpoint_url: str | None = None,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str = "us-east-1",
    max_attempts: int = 3,
    connect_timeout: float = 10,
    read_timeout: float = 60,
) -> Any:
    """A boto3 S3 client for an S3-compatible endpoint; credentials from the AWS variables unless given.

    Checksums only when the operation requires them: rclone and other S3-compatible servers
    answer ranged GETs without the whole object's checksum, which boto3 would otherwise reject.
    """
    config = Config(
        region_name=region,
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def describe(error: BaseException, bucket: str, what: str) -> str:
    """One line saying why an S3 request about ``what`` failed, in words an operator can act on."""
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return f"no AWS credentials for bucket {bucket!r} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if isinstance(error, (EndpointUnreachable, HTTPClientError)):
        return f"cannot reach the S3 endpoint for bucket {bucket!r} ({what}): {error}"
    if isinstance(error, ClientError):
        code, status = _error_code(error), _status(error)
        message = error.response.get("Error", {}).get("Message") or ""
        if code in _CREDENTIAL_CODES or status == 403:
            return f"the S3 endpoint refused the credentials for bucket {bucket!r} ({code or status}: {message})"
        if code == "NoSuchBucket":
            return f"bucket {bucket!r} does not exist"
        if code in _MISSING_KEY_CODES or status == 404:
            return f"no object for {what} in bucket {bucket!r}"
        return f"S3 request for {what} in bucket {bucket!r} failed: {code or status} {message}".rstrip()
    return f"S3 request for {what} in bucket {bucket!r} failed: {error}"


@dataclass(frozen=True)
class S3Partial:
    """What a crashed write left: a temporary object (``upload_id`` None) or an unfinished multipart upload."""

    key: str  # the archive key it was written for
    object_key: str
    upload_id: str | None = None
    initiated: datetime | None = None

    @property
    def name(self) -> str:
        """The archive's file name, as a local partial's name carries it."""
        return self.key.rpartition("/")[2]


class S3ArchiveStore:
    """Archives as objects under a prefix of one bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Any,
        *,
        part_size: int = PART_SIZE,
        copy_object_limit: int = COPY_OBJECT_LIMIT,
    ):
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part size {part_size} is below S3's least part size {MIN_PART_SIZE}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.part_size = part_size
        self.copy_object_limit = copy_object_limit

    # -- keys and object names ------------------------------------------------------------
    def _under_prefix(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _normal_key(self, key: str) -> str:
        root, _, rest = key.partition("/")
        if root not in ROOTS:
            raise StoreError(f"archive key {key!r} has no known root")
        try:
            relative = safe_member_path(rest)
        except ValueError:
            raise StoreError(f"archive key {key!r} is not a safe path") from None
        return f"{root}/{relative.as_posix()}"

    def object_key(self, key: str) -> str:
        return self._under_prefix(self._normal_key(key))

    def partial_key(self, key: str) -> str:
        return self._under_prefix(f"{PARTIAL_ROOT}/{self._normal_key(key)}")

    def _key_of(self, object_key: str) -> str:
        return object_key[len(self._under_prefix("")) :]

    @contextlib.contextmanager
    def _request(self, what: str) -> Iterator[None]:
        """Turn botocore's errors into StoreError with a line that says what went wrong."""
        try:
            yield
        except (BotoCoreError, ClientError) as error:
            raise StoreError(describe(error, self.bucket, what)) from error

    def _head(self, object_key: str) -> dict[str, Any] | None:
        """The object's metadata, or None if it is missing (its bucket missing is an error)."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as error:
            if _status(error) != 404 or _error_code(error) == "NoSuchBucket":
                raise StoreError(describe(error, self.bucket, object_key)) from error
        except BotoCoreError as error:
            raise StoreError(describe(error, self.bucket, object_key)) from error
        # A HEAD's 404 has no body to tell a missing key from a missing bucket: ask about the bucket.
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _status(error) == 404:
                raise StoreError(f"bucket {self.bucket!r} does not exist") from error
            raise StoreError(describe(error, self.bucket, "the bucket")) from error
        except BotoCoreError as error:
            raise StoreError(describe(error, self.bucket, "the bucket")) from error
        return None

    # -- start-up ---------------------------------------------------------------------------
    def check(self) -> None:
        """Fail with one clear line unless the bucket is reachable and writable (a probe put and delete)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _status(error) == 404 or _error_code(error) == "NoSuchBucket":
                raise StoreError(f"bucket {self.bucket!r} does not exist") from error
            raise StoreError(describe(error, self.bucket, "the bucket")) from error
        except BotoCoreError as error:
            raise StoreError(describe(error, self.bucket, "the bucket")) from error
        probe = self._under_prefix(f".store-check-{uuid.uuid4().hex}")
        with self._request(f"a probe object written to check bucket {self.bucket!r} is writable"):
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"agar store check\n")
            self.client.delete_object(Bucket=self.bucket, Key=probe)

    # -- reading ----------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        """True if the archive is there; an unreachable store raises, it never answers False."""
        return self._head(self.object_key(key)) is not None

    def size(self, key: str) -> int:
        head = self._head(self.object_key(key))
        if head is None:
            raise StoreError(f"no archive at {key} in bucket {self.bucket!r}")
        return int(head["ContentLength"])

    def open(self, key: str) -> ObjectReader:
        """The whole archive, streamed from one GET."""
        with self._request(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        return ObjectReader(response, self.bucket, key)

    def open_range(self, key: str, start: int, end: int | None) -> ObjectReader:
        """The stored bytes ``start``..``end`` (exclusive; None: to the end) from one ranged GET."""
        object_key = self.object_key(key)
        if end is not None and end <= start:
            return ObjectReader(None, self.bucket, key)
        span = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
        with self._request(f"{key} ({span})"):
            response = self.client.get_object(Bucket=self.bucket, Key=object_key, Range=span)
        return ObjectReader(response, self.bucket, key)

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.open(key) as handle:
            while chunk := handle.read(STREAM_BLOCK):
                digest.update(chunk)
        return digest.hexdigest()

    # -- writing ----------------------------------------------------------------------------
    def open_partial(self, key: str) -> MultipartWriter:
        """Start a streaming multipart upload of ``key``'s temporary object (a stale one is replaced)."""
        return MultipartWriter(self, key, self.partial_key(key), self.part_size)

    def publish(self, key: str) -> None:
        """Copy the completed temporary object to its final key, check the size, then delete it."""
        partial = self.partial_key(key)
        head = self._head(partial)
        if head is None:
            raise StoreError(f"no partial archive for {key} to publish in bucket {self.bucket!r}")
        self._copy(partial, self.object_key(key), int(head["ContentLength"]))
        with self._request(f"the partial of {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=partial)

    def discard_partial(self, key: str) -> None:
        """Delete the temporary object and abort every unfinished upload of it."""
        partial = self.partial_key(key)
        with self._request(f"the partial of {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=partial)
            for upload in self._uploads(partial):
                if upload["Key"] == partial:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=partial, UploadId=upload["UploadId"])

    def remove(self, key: str, *, secure: bool = False) -> None:
        """Delete the archive (a missing one is no error).

        ``secure`` cannot overwrite anything here: object storage gives no access to the bytes
        behind an object, so deleting it is all there is (versioned buckets keep old versions).
        """
        with self._request(key):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def move(self, source: str, target: str, expected_sha256: str) -> bool:
        """Place ``source``'s archive at ``target``; return True: the caller removes ``source``.

        As across local file systems: the object is copied server-side to ``target``'s temporary
        key, read back and checked against ``expected_sha256``, and only then published, so the
        final key never holds unchecked bytes; the source stays until the caller recorded the move.
        """
        source_key, partial = self.object_key(source), self.partial_key(target)
        head = self._head(source_key)
        if head is None:
            raise StoreError(f"no archive at {source} in bucket {self.bucket!r}; not moved")
        self._copy(source_key, partial, int(head["ContentLength"]))
        digest = hashlib.sha256()
        try:
            with self._request(f"the partial of {target}"):
                response = self.client.get_object(Bucket=self.bucket, Key=partial)
            with ObjectReader(response, self.bucket, target) as copied:
                while chunk := copied.read(STREAM_BLOCK):
                    digest.update(chunk)
            if digest.hexdigest() != expected_sha256:
                raise StoreError(f"{source} does not match its recorded SHA-256; not moved")
        except BaseException:
            self.discard_partial(target)
            raise
        self.publish(target)
        return True

    def _copy(self, source: str, target: str, size: int) -> None:
        """Server-side copy, checked by size: some S3-compatible servers (rclone among them) answer a
        part copy with an empty part instead of an error."""
        what = f"the copy of {self._key_of(source)} to {self._key_of(target)}"
        with self._request(what):
            if size <= self.copy_object_limit:
                self.client.copy_object(
                    Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}
                )
            else:
                transfer = TransferConfig(
                    multipart_threshold=self.copy_object_limit,
                    multipart_chunksize=max(COPY_PART_SIZE, -(-size // 10_000)),
                )
                try:
                    self.client.copy({"Bucket": self.bucket, "Key": source}, self.bucket, target, Config=transfer)
                except (BotoCoreError, ClientError):
                    raise
                except Exception as error:  # s3transfer's own failures, e.g. KeyError('ETag') on a bad reply
                    raise StoreError(f"{what} failed: the store's answer was not understood ({error!r})") from error
        copied = self._head(target)
        if copied is None or int(copied["ContentLength"]) != size:
            with self._request(what):
                self.client.delete_object(Bucket=self.bucket, Key=target)
            got = "nothing" if copied is None else f"{copied['ContentLength']} bytes"
            raise StoreError(f"{what} left {got}, not {size} bytes")

    # -- listing (for reconcile) ------------------------------------------------------------
    def keys(self) -> Iterator[str]:
        """Every final archive object, as keys (temporary objects and dot-files excluded)."""
        for root in ROOTS:
            for object_key in self._objects(self._under_prefix(f"{root}/")):
                if not object_key.rpartition("/")[2].startswith("."):
                    yield self._key_of(object_key)

    def partials(self) -> Iterator[S3Partial]:
        """Temporary objects and unfinished multipart uploads under the prefix: what crashes left."""
        partial_root = self._under_prefix(f"{PARTIAL_ROOT}/")
        for object_key in self._objects(partial_root):
            yield S3Partial(object_key[len(partial_root) :], object_key)
        for upload in self._uploads(self._under_prefix("")):
            object_key = upload["Key"]
            key = self._key_of(object_key)
            if key.startswith(f"{PARTIAL_ROOT}/"):
                key = key[len(PARTIAL_ROOT) + 1 :]
            yield S3Partial(key, object_key, upload["UploadId"], upload.get("Initiated"))

    def abort_partial(self, partial: S3Partial) -> None:
        """Remove what ``partials()`` found: abort the upload, or delete the temporary object."""
        with self._request(f"the partial of {partial.key}"):
            if partial.upload_id is None:
                self.client.delete_object(Bucket=self.bucket, Key=partial.object_key)
            else:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=partial.object_key, UploadId=partial.upload_id
                )

    def _objects(self, prefix: str) -> Iterator[str]:
        with self._request(f"the listing of {prefix or 'the bucket'}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    yield item["Key"]

    def _uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
        try:
            for page in pages:
                yield from page.get("Uploads", ())
        except ClientError as error:
            # rclone answers NoSuchUpload for a bucket that had no upload since it started: none to list.
            if _error_code(error) != "NoSuchUpload":
                raise StoreError(describe(error, self.bucket, f"the unfinished uploads under {prefix}")) from error
        except BotoCoreError as error:
            raise StoreError(describe(error, self.bucket, f"the unfinished uploads under {prefix}")) from error


class ObjectReader(io.RawIOBase):
    """A GET's streaming body as a file to read; counts the bytes it hands out; errors are StoreError."""

    def __init__(self, response: dict[str, Any] | None, bucket: str, key: str):
        self.body = None if response is None else response["Body"]
        self.content_length = 0 if response is None else int(response.get("ContentLength", 0))
        self.bucket, self.key = bucket, key
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        if self.body is None or len(buffer) == 0:
            return 0
        try:
            data = self.body.read(len(buffer))
        except (BotoCoreError, ClientError) as error:
            raise StoreError(describe(error, self.bucket, self.key)) from error
        except OSError as error:  # the connection dropped under urllib3
            raise StoreError(f"reading {self.key} from bucket {self.bucket!r} failed: {error}") from error
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed and self.body is not None:
            self.body.close()
        super().close()


class MultipartWriter(io.RawIOBase):
    """A streaming multipart upload: one part buffered at a time, SHA-256 taken as bytes go by.

    ``close()`` uploads the last part and completes the upload; leaving a ``with`` block by an
    exception, or ``abort()``, aborts it instead, so an incomplete object never appears.
    """

    def __init__(self, store: S3ArchiveStore, key: str, object_key: str, part_size: int):
        self.store, self.key, self.object_key, self.part_size = store, key, object_key, part_size
        self.client, self.bucket = store.client, store.bucket
        self._digest = hashlib.sha256()
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self.size = 0
        self.peak_buffered = 0
        self.sha256: str | None = None
        with store._request(f"the partial of {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=object_key)
        self.upload_id: str | None = upload["UploadId"]

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        if self.closed or self.upload_id is None:
            raise ValueError("write to a closed or aborted upload")
        view = memoryview(data).cast("B")
        written = len(view)
        self._digest.update(view)
        self.size += written
        while view:
            room = self.part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            self.peak_buffered = max(self.peak_buffered, len(self._buffer))
            if len(self._buffer) == self.part_size:
                self._upload_part()
        return written

    def _upload_part(self) -> None:
        number = len(self._parts) + 1
        try:
            with self.store._request(f"part {number} of the partial of {self.key}"):
                answer = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=self.object_key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=self._buffer,
                )
        except BaseException:
            self._abort_after()
            raise
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buffer = bytearray()

    def flush(self) -> None:
        """Nothing to do: a part goes out when it is full, the rest on close."""

    def close(self) -> None:
        """Upload the last part and complete the upload (the temporary object appears whole)."""
        if self.closed:
            return
        if self.upload_id is None:
            super().close()
            return
        try:
            if self._buffer or not self._parts:
                self._upload_part()
            with self.store._request(f"the completion of the partial of {self.key}"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.object_key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except BaseException:
            self._abort_after()
            raise
        self.upload_id = None
        self.sha256 = self._digest.hexdigest()
        super().close()

    def abort(self) -> None:
        """Abort the upload: the server drops its parts and no object appears."""
        upload_id, self.upload_id = self.upload_id, None
        self._buffer = bytearray()
        super().close()
        if upload_id is not None:
            with self.store._request(f"the abort of the partial of {self.key}"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.object_key, UploadId=upload_id)

    def _abort_after(self) -> None:
        """Abort on the way out of a failure: that failure is the one to raise, and an upload the
        server still holds is what ``partials()`` finds for reconcile to abort."""
        with contextlib.suppress(StoreError):
            self.abort()

    def __exit__(self, kind, value, traceback) -> None:  # type: ignore[no-untyped-def, override]
        if kind is None:
            self.close()
        else:
            self._abort_after()
