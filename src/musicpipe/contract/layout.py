"""Where the pipeline's objects live in its buckets: the one definition of the S3 layout.

Raw bucket (``raw_bucket``)::

    streams/**.csv                                  stream files (the S3 event filter's prefix)
    songs/songs.csv, users/users.csv                the reference files
    archive/streams/<YYYY>/<MM>/<DD>/<name>         archived stream files (pipeline.archiver)

Processed bucket (``processed_bucket``)::

    validation_reports/<batch_id>/report.json       the validation job's report
    processed/streams/listen_date=D/source=F/       accepted events, Parquet (etl.store)
    kpis/staging/<batch_id>/{manifest.json,items.jsonl}   KPI items for the DAG (kpi_writer)
    kpis/<kind>/listen_date=D/                      KPIs as Parquet
    pinned/<batch_id>/<key>                         the ETL's copy of an input at its validated
                                                    ETag, deleted when the batch ends (etl.inputs)

Quarantine bucket (``quarantine_bucket``)::

    quarantine/files/<batch_id>/<key>               a FAILED stream file, moved whole
    quarantine/files/<batch_id>/<key>.reason.json   why
    quarantine/rows/<batch_id>/<file stem>.csv      the rows the ETL rejected

Every module that names one of these (the manifest, the jobs, the DAG's steps) imports it from
here; ``tests/contract/test_layout.py`` fails on a second definition. Python 3.9-compatible
and stdlib-only: both Glue jobs and the DAG import it.
"""

from __future__ import annotations

# -- raw bucket ----------------------------------------------------------------------------
STREAMS_PREFIX = "streams/"
SONGS_KEY = "songs/songs.csv"
USERS_KEY = "users/users.csv"
ARCHIVE_PREFIX = "archive/streams/"

# -- processed bucket ----------------------------------------------------------------------
REPORT_KEY = "validation_reports/{batch_id}/report.json"
EVENTS_PREFIX = "processed/streams/"
STAGING_PREFIX = "kpis/staging/"
KPI_PARQUET_PREFIX = "kpis/"
PINNED_PREFIX = "pinned/"

# -- quarantine bucket ---------------------------------------------------------------------
QUARANTINE_FILES_PREFIX = "quarantine/files/"
REASON_SUFFIX = ".reason.json"
REJECTED_ROWS_PREFIX = "quarantine/rows/"


def report_key(batch_id: str) -> str:
    """``validation_reports/<batch_id>/report.json`` in the processed bucket."""
    return REPORT_KEY.format(batch_id=batch_id)


def staging_prefix(batch_id: str) -> str:
    """``kpis/staging/<batch_id>/``: the folder of a batch's staged KPI items."""
    return f"{STAGING_PREFIX}{batch_id}/"


def rejected_rows_key(batch_id: str, stem: str) -> str:
    """``quarantine/rows/<batch_id>/<stem>.csv``: a stream file's rejected rows."""
    return f"{REJECTED_ROWS_PREFIX}{batch_id}/{stem}.csv"


def pinned_prefix(batch_id: str) -> str:
    """``pinned/<batch_id>/``: the folder of the ETL's pinned input copies of a batch."""
    return f"{PINNED_PREFIX}{batch_id}/"


def pinned_key(batch_id: str, key: str) -> str:
    """``pinned/<batch_id>/<key>``: the copy of raw ``key`` that the batch's Spark reads."""
    return pinned_prefix(batch_id) + key
