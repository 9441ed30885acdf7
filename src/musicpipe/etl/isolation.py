"""One stream file that cannot be processed fails alone (docs/data-contract.md §3.9).

Pure logic, no Spark and no AWS: which files of a batch failed and why, in words a user can
act on. The job (etl.job) marks each failed file FAILED in the tracker with its own error and
goes on with the others; the staging manifest lists them as ``files_failed``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")

# A Java exception line of a Py4J error: "org.apache.spark.SparkException: message", maybe
# after "Caused by: " or ": ".
_JAVA_EXCEPTION = re.compile(
    r"^(?::\s*)?(?:Caused by:\s*)?(?:[a-z_$][\w$]*\.)+"  # package
    r"([A-Z][\w$]*(?:Exception|Error))(?::\s*(.*))?$"  # class: message
)
# Known causes, with what to do about them. Spark's CSV reader (univocity) overruns its
# 20,480-column array on a wider row; once the JVM has thrown that a few times it drops the
# message (HotSpot's fast throw), so the bare exception name has to do.
_HINTS = (
    (
        re.compile(r"ArrayIndexOutOfBoundsException|exceeded limit of 20480 columns"),
        "most likely a row has more than 20,480 fields, more than Spark's CSV reader takes "
        "(validation reads only the header's columns); remove the extra separators",
    ),
)
ERROR_LIMIT = 1000  # characters of an error kept (the tracker keeps 4,000)


@dataclass
class Isolated(Generic[R]):
    """What :func:`whole_then_each` found: the check's result over the files that passed
    (None when none did), those files, and each failed file's exception."""

    result: R | None
    ok: list[str]
    failed: dict[str, Exception] = field(default_factory=dict)


def whole_then_each(
    keys: Sequence[str],
    check: Callable[[list[str]], R],
    probe: Callable[[list[str]], object] | None = None,
) -> Isolated[R]:
    """``check`` over all ``keys`` at once; if it raises, ``probe`` (default: ``check``) over
    each key alone, then ``check`` once more over the keys that passed alone.

    One scan of the whole batch is the fast path. Only when it fails is every file checked by
    itself, so that the failing one is named and the others go on. If every file passes alone,
    no one file is to blame and the batch's error is raised again."""
    keys = list(keys)
    try:
        return Isolated(check(keys), keys)
    except Exception as exc:
        batch_error = exc
    if len(keys) == 1:
        return Isolated(None, [], {keys[0]: batch_error})
    failed: dict[str, Exception] = {}
    for key in keys:
        try:
            (probe or check)([key])
        except Exception as exc:
            failed[key] = exc
    if not failed:
        raise batch_error
    ok = [k for k in keys if k not in failed]
    return Isolated(check(ok) if ok else None, ok, failed)


def missing_columns_error(key: str, header: Sequence[str], missing: Sequence[str]) -> str:
    shown = ", ".join(repr(c) for c in header[:10]) + (", ..." if len(header) > 10 else "")
    return (
        f"{key}: header lacks {', '.join(missing)} (its header: {shown or 'empty'}); "
        "fix the header and upload the file again"
    )


def unreadable_error(key: str, exc: Exception) -> str:
    """An error of S3 reading the file (other than changed or gone)."""
    return f"{key}: S3 would not read it: {exc}; the next run tries again"


def spark_error(key: str, exc: Exception) -> str:
    """A Spark failure on one file in a line: its root cause and, for a known one, what to do.

    A Py4J error's text is the Java stack trace; the innermost "Caused by" says what broke."""
    causes = []
    for line in str(exc).splitlines():
        match = _JAVA_EXCEPTION.match(line.strip())
        if match:
            causes.append(f"{match.group(1)}: {match.group(2) or ''}".rstrip(": "))
    cause = causes[-1] if causes else f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    hint = next((h for pattern, h in _HINTS if pattern.search(str(exc))), None)
    what_to_do = f"{hint}, and upload the file again" if hint else "fix it and upload it again"
    return f"{key}: Spark could not read it ({cause}); {what_to_do}"[:ERROR_LIMIT]


def failed_entries(failures: Sequence[tuple[str, str, str]]) -> list[dict[str, str]]:
    """The staging manifest's ``files_failed``: one ``{file_key, etag, error}`` per file, by key."""
    return [{"file_key": k, "etag": e, "error": err} for k, e, err in sorted(failures)]
