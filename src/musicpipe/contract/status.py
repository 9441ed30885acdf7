"""The pipeline's status words, each written once, as str enums.

:class:`StrEnum` is the one base: a ``str`` whose ``str()``, ``format()`` and f-strings give the
plain value. (``enum.StrEnum`` is Python 3.11+, and a plain ``(str, Enum)`` mixin formats as
``Cls.NAME`` from 3.11 on.) Members *are* strings, so they compare equal to the values read
back from DynamoDB or a report, ``json.dumps`` writes the plain value, and boto3's DynamoDB
serializer stores it as a plain ``S``: what is stored stays byte-identical.

* :class:`ValidationStatus`: a file's and a report's verdict (docs/data-contract.md §2).
* :class:`TrackerStatus`: a stream file's state in the tracker table (§3.1, §8).
* :class:`ArchiveOutcome`: what the archive step did with a file (§6.2).

Python 3.9-compatible and stdlib-only: both Glue jobs and the DAG's steps import it.
"""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """A str enum whose ``str()`` and ``format()`` are its value, on every Python version."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)


class ValidationStatus(StrEnum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    # A stream file left alone because a reference file failed.
    NOT_VALIDATED = "NOT_VALIDATED"


class TrackerStatus(StrEnum):
    """PROCESSING → STAGED → COMPLETED, or FAILED / QUARANTINED; NOT_VALIDATED while a
    reference file fails (§8.1)."""

    PROCESSING = "PROCESSING"
    STAGED = "STAGED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    QUARANTINED = "QUARANTINED"
    # Left alone because a reference file failed validation: taken again once one is newer.
    NOT_VALIDATED = "NOT_VALIDATED"


class ArchiveOutcome(StrEnum):
    """Per file; the meanings are in :mod:`musicpipe.pipeline.archiver`."""

    ARCHIVED = "archived"
    SKIPPED_CHANGED = "skipped_changed"
    ALREADY_ARCHIVED = "already_archived"
    MISSING = "missing"
    NOT_COMPLETED = "not_completed"
    FAILED = "failed"
