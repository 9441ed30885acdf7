"""Job: init and commit, with the run's job bookmarks (awsglue.bookmarks)."""

from __future__ import annotations

from awsglue.bookmarks import DISABLE, ENABLE, PAUSE

# Glue's reserved run arguments, which getResolvedOptions (the real awsglue.utils) asks the
# Job class for: each list is the argument, then the values it takes.
RESERVED = {
    "continuation_options": [
        "--continuation-option",
        "continuation-enabled",
        "continuation-readonly",
        "continuation-ignore",
    ],
    "job_bookmark_options": ["--job-bookmark-option", ENABLE, PAUSE, DISABLE],
    "job_bookmark_range_options": ["--job-bookmark-from", "--job-bookmark-to"],
    "id_params": ["--JOB_NAME", "--JOB_ID", "--JOB_RUN_ID", "--SECURITY_CONFIGURATION"],
    "encryption_type_options": ["--encryption-type", "sse-s3"],
    "data_lineage_options": ["--enable-data-lineage"],
}


def _reserved(name: str):
    return classmethod(lambda cls: list(RESERVED[name]))


class Job:
    continuation_options = _reserved("continuation_options")
    job_bookmark_options = _reserved("job_bookmark_options")
    job_bookmark_range_options = _reserved("job_bookmark_range_options")
    id_params = _reserved("id_params")
    encryption_type_options = _reserved("encryption_type_options")
    data_lineage_options = _reserved("data_lineage_options")

    def __init__(self, glue_context) -> None:
        self._context = glue_context
        self._name: str | None = None

    def init(self, job_name: str, args: dict | None = None) -> None:
        self._name = job_name

    def isInitialized(self) -> bool:
        return self._name is not None

    def commit(self) -> None:
        """Saves the bookmark state of what the run read (when bookmarks are enabled); the
        emulator keeps it once the run SUCCEEDED."""
        if self._name is None:
            raise RuntimeError("Job.commit() before Job.init()")
        bookmarks = getattr(self._context, "bookmarks", None)
        if bookmarks is not None:
            bookmarks.commit()
