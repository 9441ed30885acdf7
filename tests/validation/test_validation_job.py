"""The real ``music_streaming_validation`` script, deployed as the manifest defines it and run by
the Glue job emulator against moto: report, quarantine, tracker."""

from __future__ import annotations

import importlib.util
import io
import json
import time
import zipfile

import pytest

from musicpipe import manifest as manifest_module
from musicpipe.artifacts import build_jobs_zip, deploy_jobs
from musicpipe.aws.local import LOCAL_ACCOUNT_ID
from musicpipe.bootstrap import bootstrap
from musicpipe.manifest import load_manifest
from musicpipe.pipeline.quarantine import QuarantineError, quarantine_file

from ..conftest import REPO, SAMPLES

BAD_FAILING = ("bad_timestamps.csv", "empty.csv", "header_only.csv", "latin1.csv")
BAD_FAILING += ("missing_column.csv",)
GOOD = ("streams1.csv", "streams2.csv", "streams3.csv")
SCRIPT = REPO / "spark_jobs" / "music_streaming_validation.py"


@pytest.fixture
def deployed(aws, local_stack):
    """Resources bootstrapped, artifacts uploaded, the validation job created."""
    manifest = load_manifest()
    bootstrap(aws.client, manifest)
    spec = manifest.glue_jobs[0]
    assert spec.name == "music_streaming_validation" and spec.command == "pythonshell"
    glue = aws.client("glue", endpoint=local_stack.settings.glue_endpoint)
    deploy_jobs(aws.client("s3"), glue, manifest, LOCAL_ACCOUNT_ID)
    return Deployed(aws, glue, manifest)


class Deployed:
    def __init__(self, aws, glue, manifest) -> None:
        self.aws, self.glue, self.manifest = aws, glue, manifest
        self.s3 = aws.client("s3")
        self.raw = manifest.raw_bucket
        self.quarantine = manifest.quarantine_bucket
        dynamodb = aws.session.resource("dynamodb", endpoint_url=aws.endpoint, config=aws.config)
        self.tracker = dynamodb.Table(manifest.tracker_table)

    def put(self, key: str, body: bytes) -> str:
        return self.s3.put_object(Bucket=self.raw, Key=key, Body=body)["ETag"].strip('"')

    def put_references(self, users: bytes | None = None, songs: bool = True) -> None:
        if songs:
            self.put("songs/songs.csv", (SAMPLES / "songs.csv").read_bytes())
        self.put("users/users.csv", users or (SAMPLES / "users.csv").read_bytes())

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def body(self, bucket: str, key: str) -> bytes:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def run(self, batch_id: str, **arguments: str) -> tuple[dict, list[str]]:
        """Start the job with --batch_id, wait, and return (report, output log lines)."""
        name = self.manifest.validation_job
        args = {"--batch_id": batch_id, **{f"--{k}": v for k, v in arguments.items()}}
        run_id = self.glue.start_job_run(JobName=name, Arguments=args)["JobRunId"]
        deadline = time.monotonic() + 120
        while True:
            run = self.glue.get_job_run(JobName=name, RunId=run_id)["JobRun"]
            if run["JobRunState"] not in ("STARTING", "RUNNING", "STOPPING"):
                break
            assert time.monotonic() < deadline, f"run still {run['JobRunState']}"
            time.sleep(0.2)
        logs = self.aws.client("logs")
        lines = [
            e["message"]
            for e in logs.get_log_events(
                logGroupName="/aws-glue/python-jobs/output",
                logStreamName=run_id,
                startFromHead=True,
            )["events"]
        ]
        assert run["JobRunState"] == "SUCCEEDED", (run.get("ErrorMessage"), lines)
        report_key = f"validation_reports/{batch_id}/report.json"
        report = json.loads(self.body(self.manifest.processed_bucket, report_key))
        path = f"s3://{self.manifest.processed_bucket}/{report_key}"
        assert any(path in line for line in lines), lines
        return report, lines


def by_key(report: dict) -> dict[str, dict]:
    return {f["key"]: f for f in report["files"]}


def test_script_constants_match_the_manifest():
    spec = importlib.util.spec_from_file_location("validation_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines functions only; main() runs under __main__
    assert module.SONGS_KEY == manifest_module.SONGS_KEY
    assert module.USERS_KEY == manifest_module.USERS_KEY
    assert module.STREAMS_PREFIX == manifest_module.STREAMS_PREFIX
    names = set(zipfile.ZipFile(io.BytesIO(build_jobs_zip())).namelist())
    assert "musicpipe/contract/validation.py" in names
    assert "musicpipe/pipeline/quarantine.py" in names
    assert "musicpipe/manifest.py" not in names  # needs 3.11 (tomllib): never shipped
    assert not any("__pycache__" in n for n in names)


def test_mixed_batch_report_quarantine_and_tracker(deployed):
    d = deployed
    d.put_references()
    originals: dict[str, bytes] = {}
    etags: dict[str, str] = {}
    for name in GOOD:
        originals[f"streams/{name}"] = (SAMPLES / "streams" / name).read_bytes()
    for path in sorted((SAMPLES / "bad").glob("*.csv")):
        originals[f"streams/{path.name}"] = path.read_bytes()
    originals["streams/bom_crlf_iso.csv"] = (SAMPLES / "edge" / "bom_crlf_iso.csv").read_bytes()
    for key, data in originals.items():
        etags[key] = d.put(key, data)
    d.put("streams/notes.txt", b"not a csv: never validated")
    # streams3 is already COMPLETED with this very content: skipped. streams2 was COMPLETED
    # with an older version: validated again.
    d.tracker.put_item(
        Item={"file_key": "streams/streams3.csv", "etag": etags["streams/streams3.csv"],
              "status": "COMPLETED", "batch_id": "earlier"}
    )  # fmt: skip
    d.tracker.put_item(
        Item={"file_key": "streams/streams2.csv", "etag": "0ld", "status": "COMPLETED",
              "batch_id": "earlier"}
    )  # fmt: skip

    report, lines = d.run("b-mixed")

    files = by_key(report)
    assert report["batch_id"] == "b-mixed"
    assert report["overall_status"] == "PASSED" and report["error"] is None
    assert report["threshold"] == 0.5
    assert "streams/streams3.csv" not in files and "streams/notes.txt" not in files
    expected_keys = {"songs/songs.csv", "users/users.csv"} | set(originals) - {
        "streams/streams3.csv"
    }
    assert set(files) == expected_keys
    assert [f["kind"] for f in report["files"][:2]] == ["songs", "users"]
    assert files["songs/songs.csv"]["rows_read"] == 2000
    assert files["users/users.csv"]["rows_read"] == 500
    for key, entry in files.items():
        assert set(entry) == {
            "key", "etag", "kind", "status", "missing_columns", "rows_read", "rows_rejected",
            "error", "quarantined_to",
        }  # fmt: skip
        if key.startswith("streams/"):
            assert entry["etag"] == etags[key]

    passed = {"streams/streams1.csv", "streams/streams2.csv", "streams/unknown_ids.csv"}
    passed.add("streams/bom_crlf_iso.csv")
    failed = {f"streams/{n}" for n in BAD_FAILING}
    assert {k for k, f in files.items() if f["status"] == "PASSED"} == passed | {
        "songs/songs.csv",
        "users/users.csv",
    }
    assert {k for k, f in files.items() if f["status"] == "FAILED"} == failed
    assert files["streams/unknown_ids.csv"]["rows_rejected"] == {
        "field_too_large": 0,
        "missing_key": 6,
        "bad_listen_time": 0,
        "unknown_track": 24,
        "unknown_user": 20,
    }
    assert files["streams/bad_timestamps.csv"]["rows_rejected"]["bad_listen_time"] == 140
    assert files["streams/missing_column.csv"]["missing_columns"] == ["listen_time"]
    assert "line 2" in files["streams/latin1.csv"]["error"]
    assert files["streams/empty.csv"]["error"] == "empty file (0 bytes)"
    assert files["streams/header_only.csv"]["error"] == "no data rows"
    assert report["summary"]["stream_files"] == 9
    assert report["summary"]["stream_files_passed"] == 4
    assert report["summary"]["stream_files_failed"] == 5

    # Failed files: moved whole, with their reason beside them; originals gone.
    raw_keys = d.keys(d.raw, "streams/")
    quarantined = d.keys(d.quarantine)
    for key in failed:
        target = f"quarantine/files/b-mixed/{key}"
        assert files[key]["quarantined_to"] == f"s3://{d.quarantine}/{target}"
        assert target in quarantined and key not in raw_keys
        assert d.body(d.quarantine, target) == originals[key]
        reason = json.loads(d.body(d.quarantine, target + ".reason.json"))
        assert reason["error"] == files[key]["error"]
        assert reason["source"] == f"s3://{d.raw}/{key}"
        assert reason["etag"] == etags[key] and reason["batch_id"] == "b-mixed"
        assert reason["content_length"] == len(originals[key])
        item = d.tracker.get_item(Key={"file_key": key}, ConsistentRead=True)["Item"]
        assert item["status"] == "QUARANTINED" and item["batch_id"] == "b-mixed"
        assert item["etag"] == etags[key] and item["error"] == files[key]["error"]
        assert int(item["rows_read"]) == files[key]["rows_read"]
    assert len(quarantined) == 2 * len(failed)
    # Good files untouched, and not claimed in the tracker (the ETL claims them).
    for key in passed | {"streams/streams3.csv"}:
        assert d.body(d.raw, key) == originals[key]
    items = {i["file_key"]: i for i in d.tracker.scan(ConsistentRead=True)["Items"]}
    assert items["streams/streams2.csv"]["status"] == "COMPLETED"
    assert "streams/streams1.csv" not in items

    assert any(line.startswith("FAILED") and "streams/empty.csv" in line for line in lines)
    assert any(line.startswith("PASSED") and "streams/streams1.csv" in line for line in lines)


def test_reference_failure_fails_the_batch_and_moves_nothing(deployed):
    d = deployed
    users = (SAMPLES / "users.csv").read_text().replace(",user_country", ",country", 1)
    d.put_references(users=users.encode(), songs=False)  # songs.csv missing altogether
    etags = {
        "streams/streams1.csv": d.put(
            "streams/streams1.csv", (SAMPLES / "streams" / "streams1.csv").read_bytes()
        ),
        "streams/empty.csv": d.put("streams/empty.csv", b""),
    }

    report, lines = d.run("b-refs")

    files = by_key(report)
    assert report["overall_status"] == "FAILED"
    assert report["error"].startswith("reference files failed: ")
    assert f"s3://{d.raw}/songs/songs.csv does not exist" in report["error"]
    assert "user_country" in report["error"]
    assert files["songs/songs.csv"]["status"] == "FAILED"
    assert files["users/users.csv"]["missing_columns"] == ["user_country"]
    for key in ("streams/streams1.csv", "streams/empty.csv"):
        assert files[key]["status"] == "NOT_VALIDATED"
        assert files[key]["error"] == "reference files failed"
        assert files[key]["etag"] == etags[key]
    assert d.keys(d.quarantine) == []
    assert d.keys(d.raw, "streams/") == ["streams/empty.csv", "streams/streams1.csv"]
    # Marked NOT_VALIDATED, so the retry judge takes them once a reference file is replaced.
    items = {i["file_key"]: i for i in d.tracker.scan(ConsistentRead=True)["Items"]}
    assert {k: (i["status"], i["etag"]) for k, i in items.items()} == {
        key: ("NOT_VALIDATED", etag) for key, etag in etags.items()
    }
    assert "songs/songs.csv" in items["streams/streams1.csv"]["error"]
    assert any("overall_status=FAILED" in line for line in lines)


def test_nothing_new_and_explicit_keys(deployed):
    d = deployed
    d.put_references()

    report, _ = d.run("b-empty")
    assert report["overall_status"] == "FAILED"
    assert report["error"] == "no stream files to validate"
    assert [f["kind"] for f in report["files"]] == ["songs", "users"]

    data = (SAMPLES / "streams" / "streams1.csv").read_bytes()
    d.put("streams/streams1.csv", data)
    report, _ = d.run(
        "b-explicit",
        stream_keys=f" s3://{d.raw}/streams/streams1.csv, streams/gone.csv,songs/songs.csv,",
    )
    files = {f["key"]: f for f in report["files"] if f["kind"] == "streams"}
    assert report["overall_status"] == "PASSED"
    assert files["streams/streams1.csv"]["status"] == "PASSED"
    assert files["streams/gone.csv"]["error"] == f"s3://{d.raw}/streams/gone.csv does not exist"
    assert "not a stream file" in files["songs/songs.csv"]["error"]
    # Neither the reference file named by mistake nor anything else was moved.
    assert d.keys(d.quarantine) == []
    assert "songs/songs.csv" in d.keys(d.raw)
    assert d.body(d.raw, "streams/streams1.csv") == data


def test_a_bad_file_held_by_a_live_batch_is_not_moved_under_it(deployed):
    """The file was overwritten with bad content while another batch's ETL holds it
    PROCESSING (that ETL reads its pinned copy): this run's validation must neither move it nor
    take the other batch's claim; once that batch is done, a later run quarantines it."""
    d = deployed
    d.put_references()
    key = "streams/held.csv"
    etag = d.put(key, (SAMPLES / "bad" / "missing_column.csv").read_bytes())
    held = {"file_key": key, "etag": "0ld", "status": "PROCESSING", "batch_id": "b-live",
            "run_id": "jr_live", "claimed_epoch": int(time.time()), "attempts": 1,
            "updated_at": "2026-03-01T00:00:00+00:00"}  # fmt: skip
    d.tracker.put_item(Item=held)

    report, _ = d.run("b-second", stream_keys=key)

    result = by_key(report)[key]
    assert result["status"] == "FAILED"
    assert "not quarantined: the tracker holds it as PROCESSING (batch b-live" in result["error"]
    assert key in d.keys(d.raw) and d.keys(d.quarantine) == []
    item = d.tracker.get_item(Key={"file_key": key})["Item"]
    assert (item["status"], item["batch_id"], item["etag"]) == ("PROCESSING", "b-live", "0ld")

    d.tracker.put_item(Item={**held, "status": "COMPLETED"})
    report, _ = d.run("b-third", stream_keys=key)
    assert by_key(report)[key]["quarantined_to"], by_key(report)[key]["error"]
    assert key not in d.keys(d.raw)
    item = d.tracker.get_item(Key={"file_key": key})["Item"]
    assert (item["status"], item["etag"]) == ("QUARANTINED", etag)


# -- quarantine_file on its own (moto, no Glue) ------------------------------------------------


def test_quarantine_moves_whole_and_refuses_changed_or_missing_files(aws):
    manifest = load_manifest()
    bootstrap(aws.client, manifest)
    s3 = aws.client("s3")
    raw, quarantine = manifest.raw_bucket, manifest.quarantine_bucket
    old = s3.put_object(Bucket=raw, Key="streams/a.csv", Body=b"v1\n")["ETag"]
    s3.put_object(Bucket=raw, Key="streams/a.csv", Body=b"v2, re-uploaded\n")

    with pytest.raises(QuarantineError, match="changed since it was validated"):
        quarantine_file(s3, raw, "streams/a.csv", quarantine, "b1", {"error": "x"}, etag=old)
    with pytest.raises(QuarantineError, match="cannot be quarantined"):
        quarantine_file(s3, raw, "streams/gone.csv", quarantine, "b1", {"error": "x"})
    assert s3.list_objects_v2(Bucket=quarantine).get("KeyCount") == 0
    assert s3.get_object(Bucket=raw, Key="streams/a.csv")["Body"].read() == b"v2, re-uploaded\n"

    url = quarantine_file(s3, raw, "streams/a.csv", quarantine, "b1", {"error": "empty file"})
    assert url == f"s3://{quarantine}/quarantine/files/b1/streams/a.csv"
    body = s3.get_object(Bucket=quarantine, Key="quarantine/files/b1/streams/a.csv")["Body"]
    assert body.read() == b"v2, re-uploaded\n"
    reason = json.loads(
        s3.get_object(Bucket=quarantine, Key="quarantine/files/b1/streams/a.csv.reason.json")[
            "Body"
        ].read()
    )
    assert reason["error"] == "empty file" and reason["content_length"] == 16
    assert "Contents" not in s3.list_objects_v2(Bucket=raw, Prefix="streams/")
    with pytest.raises(ValueError):
        quarantine_file(s3, raw, "streams/b.csv", quarantine, "a/b", {})
