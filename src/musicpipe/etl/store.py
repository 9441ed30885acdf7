"""Where accepted events live: ``s3://<processed>/processed/streams/listen_date=D/source=F/``.

One partition per (date, source file) holds that file's distinct accepted events of that date.
Re-running a file deletes its partitions of every date first, so its rows are replaced, never
appended a second time; a re-uploaded file that no longer has events on some date leaves
nothing behind there. KPIs read every source of a date and drop events delivered more than
once, so the same event in two files counts once.

The job's own reads of a raw file (its header, :func:`read_header`) are here too, so that
transform.py holds only Spark transformations and no S3 client call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from musicpipe.contract.layout import EVENTS_PREFIX, STREAMS_PREFIX
from musicpipe.etl.transform import header_from_bytes

# Characters Spark escapes in partition values (ExternalCatalogUtils.escapePathName).
_SPARK_ESCAPED = set("\"#%'*/:=?\\{[]^\x7f") | {chr(c) for c in range(1, 32)}


def escape_partition_value(value: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in _SPARK_ESCAPED else c for c in value)


def source_name(file_key: str) -> str:
    """The partition value for a stream file: its key below streams/."""
    return file_key.split("/", 1)[1] if file_key.startswith(STREAMS_PREFIX) else file_key


def read_header(s3, bucket: str, key: str) -> list[str]:
    """The header row of s3://``bucket``/``key``, from its first 64 KiB
    (``transform.header_from_bytes``)."""
    head = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-65535")["Body"].read()
    return header_from_bytes(head)


@dataclass
class EventStore:
    s3: Any  # a boto3 S3 client
    bucket: str

    def root_url(self) -> str:
        return f"s3://{self.bucket}/{EVENTS_PREFIX}"

    def date_url(self, date: str) -> str:
        return f"{self.root_url()}listen_date={date}/"

    def dates(self) -> list[str]:
        """Every listen_date that has a partition (one LIST per 1,000 dates)."""
        found = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket=self.bucket, Prefix=EVENTS_PREFIX + "listen_date=", Delimiter="/"
        ):
            for prefix in page.get("CommonPrefixes", []):
                found.append(prefix["Prefix"][len(EVENTS_PREFIX + "listen_date=") : -1])
        return sorted(found)

    def _source_prefix(self, date: str, source: str) -> str:
        return f"{EVENTS_PREFIX}listen_date={date}/source={escape_partition_value(source)}/"

    def dates_of_source(self, source: str, dates: list[str] | None = None) -> list[str]:
        """The dates on which ``source`` has events stored."""
        held = []
        for date in dates if dates is not None else self.dates():
            page = self.s3.list_objects_v2(
                Bucket=self.bucket, Prefix=self._source_prefix(date, source), MaxKeys=1
            )
            if page.get("KeyCount", 0):
                held.append(date)
        return held

    def dates_with_data(self, dates: list[str]) -> list[str]:
        """Those of ``dates`` that still hold any event file."""
        return [
            d
            for d in dates
            if self.s3.list_objects_v2(
                Bucket=self.bucket, Prefix=f"{EVENTS_PREFIX}listen_date={d}/", MaxKeys=1
            ).get("KeyCount", 0)
        ]

    def delete_source(self, source: str, dates: list[str]) -> int:
        """Remove the source's partitions on those dates; the number of objects deleted."""
        deleted = 0
        paginator = self.s3.get_paginator("list_objects_v2")
        for date in dates:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self._source_prefix(date, source)
            ):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
                    deleted += len(keys)
        return deleted
