"""Job bookmarks on the emulator's side: the JobBookmarkEntry each job keeps, moved on by a
run that SUCCEEDED after its script called ``job.commit()``, read by GetJobBookmark and
emptied by ResetJobBookmark. The run's side (which objects a source reads) is the Glue ETL
library's (``etl_library/awsglue/bookmarks.py``), which the runner hands these two files."""

from __future__ import annotations

import json
from pathlib import Path

from musicpipe.glue.errors import EntityNotFound
from musicpipe.glue.store import Store

STATE_ENV = "MUSICPIPE_GLUE_BOOKMARK_STATE"
COMMIT_ENV = "MUSICPIPE_GLUE_BOOKMARK_COMMIT"
COMMIT_FILE = "bookmark-commit.json"


def run_environment(store: Store, job_name: str, workdir: Path) -> dict[str, str]:
    """What a glueetl run's script needs to see: the job's committed state (a file that holds
    the entry's bookmark, written for the run) and where its commit goes."""
    entry = store.get_bookmark(job_name)
    state = workdir / "bookmark-state.json"
    state.write_text(entry["JobBookmark"] if entry else "{}")
    return {STATE_ENV: str(state), COMMIT_ENV: str(workdir / COMMIT_FILE)}


def keep_commit(store: Store, run: dict, workdir: Path) -> dict | None:
    """After a SUCCEEDED run: the state its script committed becomes the job's bookmark (the
    entry's Run and Version go up by one). None when the script committed nothing."""
    committed = workdir / COMMIT_FILE
    if not committed.is_file():
        return None
    states = json.loads(committed.read_text())
    with store.lock:
        before = store.get_bookmark(run["JobName"]) or {}
        entry = {
            "JobName": run["JobName"],
            "Version": int(before.get("Version", 0)) + 1,
            "Run": int(before.get("Run", 0)) + 1,
            "Attempt": int(run.get("Attempt", 0)),
            "RunId": run["Id"],
            "JobBookmark": json.dumps(states, sort_keys=True),
        }
        if before.get("RunId"):
            entry["PreviousRunId"] = before["RunId"]
        store.put_bookmark(entry)
    return entry


def get_entry(store: Store, job_name: str) -> dict:
    entry = store.get_bookmark(job_name)
    if entry is None:
        raise EntityNotFound(f"Continuation for job {job_name} not found")
    return entry


def reset(store: Store, job_name: str) -> dict:
    """The job's bookmark emptied: the next bookmarked run reads every object again. Glue
    answers with the entry as it was reset."""
    with store.lock:
        entry = get_entry(store, job_name)
        entry = {
            **entry,
            "JobBookmark": json.dumps({"states": {}}),
            "Version": entry["Version"] + 1,
        }
        store.put_bookmark(entry)
    return entry
