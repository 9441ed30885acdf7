"""The emulator's state on disk: jobs and runs as JSON files, so they survive a restart.

Layout of the state folder: ``jobs/<name>.json`` and ``runs/<job>/<run id>.json``. Writes go
to a temporary file and are renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from urllib.parse import quote


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        (root / "jobs").mkdir(parents=True, exist_ok=True)
        (root / "runs").mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _safe(name: str) -> str:
        return quote(name, safe="")

    def _write(self, path: Path, data: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)

    # jobs
    def job_path(self, name: str) -> Path:
        return self.root / "jobs" / f"{self._safe(name)}.json"

    def get_job(self, name: str) -> dict | None:
        try:
            return json.loads(self.job_path(name).read_text())
        except FileNotFoundError:
            return None

    def put_job(self, job: dict) -> None:
        self._write(self.job_path(job["Name"]), job)

    def delete_job(self, name: str) -> None:
        self.job_path(name).unlink(missing_ok=True)

    def jobs(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted((self.root / "jobs").glob("*.json"))]

    # runs
    def run_path(self, job_name: str, run_id: str) -> Path:
        return self.root / "runs" / self._safe(job_name) / f"{run_id}.json"

    def get_run(self, job_name: str, run_id: str) -> dict | None:
        try:
            return json.loads(self.run_path(job_name, run_id).read_text())
        except FileNotFoundError:
            return None

    def put_run(self, run: dict) -> None:
        self._write(self.run_path(run["JobName"], run["Id"]), run)

    def runs(self, job_name: str) -> list[dict]:
        """The job's runs, newest first (as GetJobRuns lists them)."""
        folder = self.root / "runs" / self._safe(job_name)
        runs = [json.loads(p.read_text()) for p in folder.glob("*.json")]
        return sorted(runs, key=lambda r: r["StartedOn"], reverse=True)

    def all_runs(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in (self.root / "runs").glob("*/*.json")]

    # job bookmarks: one JobBookmarkEntry per job
    def bookmark_path(self, job_name: str) -> Path:
        return self.root / "bookmarks" / f"{self._safe(job_name)}.json"

    def get_bookmark(self, job_name: str) -> dict | None:
        try:
            return json.loads(self.bookmark_path(job_name).read_text())
        except FileNotFoundError:
            return None

    def put_bookmark(self, entry: dict) -> None:
        self._write(self.bookmark_path(entry["JobName"]), entry)

    def debug_dir(self, job_name: str) -> Path:
        """Where the job's debug runs run their script from (the same folder every time)."""
        return self.root / "debug" / self._safe(job_name)

    def run_dir(self, run_id: str) -> Path:
        """Scratch space of one run: the fetched script, libraries, local log copies."""
        path = self.root / "work" / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path
