"""The S3 helpers of musicpipe.aws.s3, on hand-made responses (no server)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from musicpipe.aws.s3 import (
    copy_mismatches,
    error_code,
    head_or_none,
    is_not_found,
    is_precondition_failed,
    plain_etag,
    same_etag,
    same_object,
)


def client_error(code: str | None) -> ClientError:
    response: dict = {"Error": {"Code": code}} if code is not None else {}
    return ClientError(response, "HeadObject")


def test_error_codes():
    assert error_code(client_error("NoSuchKey")) == "NoSuchKey"
    assert error_code(client_error(None)) == ""
    assert all(is_not_found(client_error(c)) for c in ("NoSuchKey", "404", "NotFound"))
    assert not is_not_found(client_error("NoSuchBucket"))
    assert is_precondition_failed(client_error("412"))
    assert is_precondition_failed(client_error("PreconditionFailed"))
    assert not is_precondition_failed(client_error("403"))


def test_etags():
    assert plain_etag('"abc"') == "abc" and plain_etag("abc-2") == "abc-2"
    assert plain_etag("") == "" and plain_etag(None) is None
    assert same_etag('"abc"', "abc") and not same_etag(None, None)
    assert not same_etag("abc", None) and not same_etag("abc", "abd")


class FakeS3:
    def __init__(self, error: str | None = None) -> None:
        self.error = error

    def head_object(self, **kwargs):
        if self.error:
            raise client_error(self.error)
        return {"ETag": '"e"', **kwargs}


def test_head_or_none():
    assert head_or_none(FakeS3(), "b", "k", ChecksumMode="ENABLED")["ChecksumMode"] == "ENABLED"
    assert head_or_none(FakeS3("404"), "b", "k") is None
    with pytest.raises(ClientError):
        head_or_none(FakeS3("AccessDenied"), "b", "k")


def test_copy_mismatches():
    source = {"ContentLength": 3, "ETag": '"abc"'}
    assert copy_mismatches(source, {"ContentLength": 3, "ETag": "abc"}) == []
    assert copy_mismatches(source, {"ContentLength": 4, "ETag": '"x"'}) == [
        "size 4 != 3",
        "ETag x != abc",
    ]
    assert copy_mismatches(source, {"ContentLength": 3, "ETag": '"x"'}, compare_etags=False) == []
    # Another ETag (SSE-KMS) but the same full-object checksum: the same object.
    kms = {"ContentLength": 3, "ETag": '"x"', "ChecksumCRC32": "AAA="}
    assert same_object({**source, "ChecksumCRC32": "AAA="}, kms)
    assert not same_object({**source, "ChecksumCRC32": "BBB="}, kms)
    # A composite checksum (of the parts) says nothing about the whole object.
    assert not same_object(
        {**source, "ChecksumCRC32": "AAA=-2"}, {**kms, "ChecksumCRC32": "AAA=-2"}
    )
