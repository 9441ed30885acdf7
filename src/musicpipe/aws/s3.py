"""Small helpers over boto3's S3 (and any botocore) errors and responses, written once.

botocore's error codes (:func:`error_code` and the code sets), ETags as the pipeline keeps
them (:func:`plain_etag`: without the surrounding double quotes), HEAD/GET that answer None
for a missing object, and the check that a copy is the same object as its source
(:func:`copy_mismatches`), which the archiver and the quarantine both make after copying.

botocore and the standard library only, Python 3.9-compatible: the Glue jobs (the validation
job runs on Glue's Python shell 3.9) and the DAG's steps import it.
"""

from __future__ import annotations

from typing import Any, overload

from botocore.exceptions import ClientError

# What S3 answers for an object that is not there (HEAD has no body, so only "404").
NOT_FOUND_CODES = ("NoSuchKey", "404", "NotFound")
# A conditional request (IfMatch, CopySourceIfMatch) whose condition failed.
PRECONDITION_FAILED_CODES = ("PreconditionFailed", "412")
# DynamoDB's answer to a conditional write whose condition failed.
CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"

# Full-object checksums S3 may return on HEAD with ChecksumMode=ENABLED.
CHECKSUM_FIELDS = (
    "ChecksumCRC64NVME",
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumSHA1",
    "ChecksumSHA256",
)


def error_code(exc: ClientError) -> str:
    """The error's code (``NoSuchKey``, ``404``, ``ConditionalCheckFailedException``...), or
    "" when the response has none."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in NOT_FOUND_CODES


def is_precondition_failed(exc: ClientError) -> bool:
    return error_code(exc) in PRECONDITION_FAILED_CODES


@overload
def plain_etag(etag: str) -> str: ...
@overload
def plain_etag(etag: object) -> str | None: ...
def plain_etag(etag: object) -> str | None:
    """An S3 ETag without its surrounding double quotes (as reports and the tracker keep it);
    None when there is no ETag (None, or anything but a string)."""
    return etag.strip('"') if isinstance(etag, str) else None


def same_etag(a: object, b: object) -> bool:
    """Both are ETags, and the same one once their quotes are stripped."""
    plain = plain_etag(a)
    return plain is not None and plain == plain_etag(b)


def head_or_none(s3: Any, bucket: str, key: str, **kwargs: Any) -> dict | None:
    """HeadObject's response, or None when the object does not exist; other errors raise."""
    try:
        return s3.head_object(Bucket=bucket, Key=key, **kwargs)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def read_or_none(s3: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when it does not exist; other errors raise."""
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def copy_mismatches(source: dict, copy: dict, compare_etags: bool = True) -> list[str]:
    """How the HEAD of a copy differs from the HEAD of its source; empty when it is the same
    object: the same size, and (unless ``compare_etags`` is False: a copy that cannot keep the
    ETag, such as a multipart source copied with one CopyObject) the same ETag, or else the
    same full-object checksum. The checksum covers buckets where the ETag is not the MD5 of
    the bytes (SSE-KMS, SSE-C); S3 returns it on a HEAD with ``ChecksumMode="ENABLED"``."""
    problems = []
    if copy.get("ContentLength") != source.get("ContentLength"):
        problems.append(f"size {copy.get('ContentLength')} != {source.get('ContentLength')}")
    if compare_etags and not _same_content(source, copy):
        problems.append(f"ETag {plain_etag(copy.get('ETag'))} != {plain_etag(source.get('ETag'))}")
    return problems


def same_object(source: dict, copy: dict) -> bool:
    """:func:`copy_mismatches` finds nothing, ETags compared."""
    return not copy_mismatches(source, copy)


def _same_content(source: dict, copy: dict) -> bool:
    if plain_etag(copy.get("ETag")) == plain_etag(source.get("ETag")):
        return True
    for name in CHECKSUM_FIELDS:
        a, b = source.get(name), copy.get(name)
        if a and b and "-" not in a and "-" not in b:
            return a == b
    return False
