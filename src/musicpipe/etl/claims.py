"""Which stream files a batch takes, at which version (docs/data-contract.md §3.1–§3.2).

The reference files are pinned first, at the ETags of the batch's validation report: one that
changed since validation stops the run before any claim. Then each stream file the report
passed is pinned at its validated ETag and claimed in the tracker; a file changed since (S3
412) is neither processed nor claimed, and is left for its own S3 event.
"""

from __future__ import annotations

from collections.abc import Callable

from musicpipe.contract.keys import key_problem, refused_key_message
from musicpipe.contract.layout import SONGS_KEY, STREAMS_PREFIX, USERS_KEY
from musicpipe.etl import isolation
from musicpipe.etl.inputs import Changed, Gone, Pinner, ReferenceChanged, Validated
from musicpipe.pipeline.tracker import Tracker


class Claims:
    def __init__(self, args, s3, glue, tracker: Tracker, log: Callable[[str], None]) -> None:
        self.args = args  # etl.job.EtlArgs
        self.s3 = s3
        self.glue = glue
        self.tracker = tracker
        self.log = log

    def pin_references(self, validated: Validated, pins: Pinner) -> None:
        """songs.csv and users.csv pinned at their validated ETags; raises ReferenceChanged,
        before any claim, when one changed since validation."""
        since = "since validation" if validated.report_url else "as the run started"
        for key in (SONGS_KEY, USERS_KEY):
            if validated.report_url is None:
                etag = pins.current_etag(key)
            else:
                etag = validated.references.get(key)
            where = f"s3://{self.args.raw_bucket}/{key}"
            if etag is None:
                raise ReferenceChanged(
                    f"{where} is missing (or not in {validated.report_url}): no stream file "
                    "was claimed; upload it, and the next run validates and processes the files"
                )
            try:
                pins.pin(key, etag)
            except (Changed, Gone) as exc:
                now = exc.now if isinstance(exc, Changed) else None
                raise ReferenceChanged(
                    f"{where} changed {since} (validated ETag {etag}, now {now or 'gone'}): "
                    "the run stops before claiming any stream file; the next run validates "
                    "the new version and processes the waiting files"
                ) from None

    def candidate_keys(self, validated: Validated) -> list[str]:
        if self.args.stream_keys:
            keys = sorted(set(self.args.stream_keys))
        elif validated.report_url is not None:
            keys = sorted(validated.streams)
        else:
            keys = []
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.args.raw_bucket, Prefix=STREAMS_PREFIX
            ):
                keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".csv")]
        # Validation quarantines a key that Hadoop would read as another path; should one get
        # here anyway, it is left alone, so it cannot fail the other files of the batch.
        readable = []
        for key in sorted(keys):
            problem = key_problem(key)
            if problem is None:
                readable.append(key)
            else:
                self.log(f"skip {refused_key_message(key, problem)}")
        return readable

    def run_is_alive(self, run_id: str) -> bool:
        """Whether the Glue run holding a claim still runs (a killed run's claim is stale)."""
        if not run_id or run_id == self.args.job_run_id:
            return False
        try:
            run = self.glue.get_job_run(JobName=self.args.job_name, RunId=run_id)["JobRun"]
        except Exception:
            return False
        return run["JobRunState"] in ("STARTING", "RUNNING", "STOPPING", "WAITING")

    def claim(self, validated: Validated, pins: Pinner) -> list[tuple[str, str, str | None]]:
        """(key, ETag, error) of each file pinned at its validated ETag, then claimed; error
        is set when S3 would not read it (it fails alone). A file changed since validation is
        neither processed nor claimed: its own S3 event starts a run that validates the new
        version first."""
        claimed: list[tuple[str, str, str | None]] = []
        for key in self.candidate_keys(validated):
            if validated.report_url is None:
                etag = pins.current_etag(key)
            else:
                etag = validated.streams.get(key)
                if etag is None:
                    self.log(f"skip {key}: not PASSED in {validated.report_url}")
                    continue
            error = None
            try:
                if etag is None:
                    raise Gone(key)
                pins.pin(key, etag)
            except Changed as exc:
                self.log(
                    f"skip {key}: changed since validation (validated ETag {exc.wanted}, now "
                    f"{exc.now or 'gone'}): not claimed or processed by this run; its own S3 "
                    "event starts a run that validates the new version first"
                )
                continue
            except Gone:
                self.log(f"skip {key}: no longer in s3://{self.args.raw_bucket}")
                continue
            except Exception as exc:  # S3 will not read it: this file fails alone
                error = isolation.unreadable_error(key, exc)
            assert etag is not None  # None raised Gone above
            if self.tracker.claim(
                key, etag, self.args.batch_id, self.args.job_run_id, self.run_is_alive
            ):
                claimed.append((key, etag, error))
            else:
                self.log(f"skip {key}: already COMPLETED with this content, or held by a live run")
        return claimed
