"""Job bookmarks for S3 sources, as Glue keeps them: per job and ``transformation_ctx``, the
objects a committed run read; a bookmarked source reads only objects new (or changed) since.

The emulator hands the run two files: the job's committed state (MUSICPIPE_GLUE_BOOKMARK_STATE)
and where ``job.commit()`` puts the run's new state (MUSICPIPE_GLUE_BOOKMARK_COMMIT). The
emulator keeps that new state only if the run SUCCEEDED, so a failed run saves nothing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ENABLE, DISABLE, PAUSE = "job-bookmark-enable", "job-bookmark-disable", "job-bookmark-pause"
STATE_ENV = "MUSICPIPE_GLUE_BOOKMARK_STATE"
COMMIT_ENV = "MUSICPIPE_GLUE_BOOKMARK_COMMIT"


def option(argv: list[str] | None = None) -> str:
    """The run's --job-bookmark-option (Glue passes it to every run; disabled by default)."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv[:-1]):
        if arg == "--job-bookmark-option":
            value = argv[i + 1]
            if value not in (ENABLE, DISABLE, PAUSE):
                raise ValueError(
                    f"--job-bookmark-option {value!r}: use {ENABLE}, {DISABLE} or {PAUSE}"
                )
            return value
    return DISABLE


class Bookmarks:
    """The run's view: what committed runs read, and what this run has read so far."""

    def __init__(self) -> None:
        self.option = option()
        path = os.environ.get(STATE_ENV)
        self.committed: dict = {}
        if path and Path(path).is_file():
            self.committed = json.loads(Path(path).read_text()).get("states", {})
        self.read: dict[str, dict[str, str]] = {}

    def new_objects(self, ctx: str, objects: dict[str, str]) -> dict[str, str]:
        """Of ``objects`` (url → ETag), those this source should read now."""
        if self.option == DISABLE or not ctx:
            return objects
        seen = self.committed.get(ctx, {}).get("files", {})
        fresh = {url: etag for url, etag in objects.items() if seen.get(url) != etag}
        self.read.setdefault(ctx, {}).update(fresh)
        return fresh

    def commit(self) -> None:
        """The committed state plus what this run read, for the emulator to keep."""
        target = os.environ.get(COMMIT_ENV)
        if self.option != ENABLE or not target:
            return
        states = {ctx: {"files": dict(v.get("files", {}))} for ctx, v in self.committed.items()}
        for ctx, files in self.read.items():
            states.setdefault(ctx, {"files": {}})["files"].update(files)
        Path(target).write_text(json.dumps({"states": states}, sort_keys=True))
