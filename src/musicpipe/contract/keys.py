"""Which raw keys the pipeline can read as the object they name: the key rule, as a pure function.

S3 takes any string as a key, but the ETL reads files through Hadoop's ``Path`` and Spark's
reader, which treat a key as a path: ``streams/../x.csv`` becomes ``x.csv``, ``.`` segments,
``//`` and a trailing ``/`` are normalised away, a ``:`` in a segment is parsed as a URI
scheme, and Spark expands glob characters (``{``, ``}``, ``[``, ``]``, ``*``, ``?``, and ``\\``
as their escape) when it lists the paths it is given. The ETL names a row's file from
``input_file_name()``, a URI whose ``%`` escapes it decodes, so a ``%`` in a key would name
another file. The DAG hands the validated keys to the ETL as one comma-separated argument
(``--stream_keys``), so a ``,`` would cut a key in two. Control characters have no place in a
path either.

Such a key would make Spark read another object, or none, and fail the whole batch. The
validation job quarantines a file whose key breaks this rule before anything reads it, and the
ETL skips such a key if it is handed one. Everything else (spaces, ``+``, ``=``, ``;``, ``@``,
non-ASCII letters, ...) is read as it is.

Python 3.9-compatible and stdlib-only (the validation job runs in Glue's Python shell).
"""

from __future__ import annotations

from musicpipe.contract.layout import STREAMS_PREFIX

# Glob characters of Spark's reader (SparkHadoopUtil.isGlobPath), ':' (a URI scheme in Hadoop's
# Path) and '%' (decoded in input_file_name()).
SPECIAL_CHARACTERS = "{}[]*?\\:%"


def key_problem(key: str) -> str | None:
    """Why the pipeline cannot read ``key`` as the object it names (a sentence that names the
    rule), or None when the key is fine. The key is the raw key, not URL-encoded."""
    if not key.startswith(STREAMS_PREFIX):
        return f"not a stream file: keys must start with {STREAMS_PREFIX}"
    if key.endswith("/"):
        return "it ends with '/' (Hadoop drops a trailing '/' and would read another object)"
    segments = key.split("/")
    if "" in segments:
        return "it has an empty path segment ('//'), which Hadoop collapses into one '/'"
    for segment in segments:
        if segment in (".", ".."):
            return f"it has a {segment!r} path segment, which Hadoop resolves to another path"
    for char in key:
        if char == ",":
            return "it contains ',', which separates keys in the jobs' --stream_keys argument"
        if char in SPECIAL_CHARACTERS:
            return (
                f"it contains {char!r}, which Hadoop or Spark reads as a path pattern or "
                "escape, not as a character of the name"
            )
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return f"it contains the control character U+{ord(char):04X}"
    return None


def refused_key_message(key: str, problem: str) -> str:
    """The error a refused key gets in the report, the reason file and the ETL's log."""
    return f"key {key!r} refused by the key rule: {problem}"
