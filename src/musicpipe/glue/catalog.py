"""The Glue Data Catalog on the emulator's endpoint: its operations are moto's, forwarded to
the stack's AWS server as they came, so one Glue endpoint serves jobs, sessions, bookmarks
and the catalog (which ``create_dynamic_frame.from_catalog`` and a team's own scripts read)."""

from __future__ import annotations

import urllib.error
import urllib.request

# The catalog's operations moto serves (databases, tables, partitions).
OPERATIONS = frozenset(
    {
        "CreateDatabase",
        "GetDatabase",
        "GetDatabases",
        "UpdateDatabase",
        "DeleteDatabase",
        "CreateTable",
        "GetTable",
        "GetTables",
        "UpdateTable",
        "DeleteTable",
        "BatchDeleteTable",
        "GetTableVersion",
        "GetTableVersions",
        "CreatePartition",
        "BatchCreatePartition",
        "GetPartition",
        "GetPartitions",
        "BatchGetPartition",
        "UpdatePartition",
        "DeletePartition",
        "BatchDeletePartition",
    }
)
FORWARDED_HEADERS = ("Content-Type", "X-Amz-Target", "Authorization", "X-Amz-Date")


def forward(aws_endpoint: str, headers, body: bytes) -> tuple[int, bytes, str]:
    """The request sent on to ``aws_endpoint``: (status, body, content type) of its answer."""
    request = urllib.request.Request(aws_endpoint.rstrip("/") + "/", data=body, method="POST")
    for name in FORWARDED_HEADERS:
        if headers.get(name):
            request.add_header(name, headers[name])
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:  # a Glue error of moto's: passed on as it is
        return error.code, error.read(), error.headers.get("Content-Type", "")
