"""The Glue ETL Python API on plain Spark (src/musicpipe/glue/etl_library): every DynamicFrame
method and transform it serves, compared with plain DataFrames on real Spark; and the script
the Glue console writes for a new job, run unchanged through the emulator with job bookmarks:
a second run reads only the new file, a paused run does not move the bookmark, a failed run
saves nothing, ResetJobBookmark makes the next run read all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from musicpipe.glue.etl_library_path import FOLDER

from .test_glue_emulator import ARTIFACTS, create_job, env, log_lines, put_script, wait

__all__ = ["env"]  # the fixture, used by name

CHECKS = Path(__file__).with_name("etl_library_checks.py")
# Each method and transform the issue lists, and the refusals (etl_library_checks.CHECKS).
EXPECTED_CHECKS = {
    "fromDF_toDF", "count", "printSchema_show", "select_fields", "SelectFields", "drop_fields",
    "DropFields", "rename_field", "RenameField", "filter", "Filter", "map", "apply_mapping",
    "ApplyMapping", "resolveChoice_cast", "ResolveChoice", "resolveChoice_make_struct_refused",
    "join", "Join", "DropNullFields", "union", "unknown_method_refused",
}  # fmt: skip

# As the Glue console writes a new job's script, plus the test's arguments.
CONSOLE_SCRIPT = """\
import sys
from awsglue.transforms import *
from awsglue.utils import getResolvedOptions
from pyspark.context import SparkContext
from awsglue.context import GlueContext
from awsglue.job import Job

args = getResolvedOptions(sys.argv, ["JOB_NAME", "src", "dst", "fail"])
sc = SparkContext.getOrCreate()
glueContext = GlueContext(sc)
spark = glueContext.spark_session
job = Job(glueContext)
job.init(args["JOB_NAME"], args)

source = glueContext.create_dynamic_frame.from_options(
    "s3", {"paths": [args["src"]]}, "csv", {"withHeader": True}, transformation_ctx="source"
)
mapped = ApplyMapping.apply(
    frame=source,
    mappings=[("id", "string", "id", "long"), ("name", "string", "name", "string")],
    transformation_ctx="mapped",
)
print("READ", sorted(r["id"] for r in mapped.toDF().collect()), flush=True)
if mapped.count():
    glueContext.write_dynamic_frame.from_options(
        frame=mapped,
        connection_type="s3",
        connection_options={"path": args["dst"]},
        format="parquet",
        transformation_ctx="sink",
    )
if args["fail"] == "yes":
    raise RuntimeError("failed before job.commit()")
job.commit()
"""


def test_each_method_and_transform_matches_plain_dataframes():
    env = {**os.environ, "PYTHONPATH": str(FOLDER)}
    done = subprocess.run(
        [sys.executable, str(CHECKS)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert not failed, "\n".join(failed)
    passed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("PASS")}
    assert passed == EXPECTED_CHECKS, passed ^ EXPECTED_CHECKS


@pytest.fixture
def console_job(env):
    aws, glue = env
    prefix = f"bookmarks-{uuid.uuid4().hex[:6]}"
    name = create_job(
        glue,
        put_script(aws, "console", CONSOLE_SCRIPT),
        command="glueetl",
        DefaultArguments={
            "--src": f"s3://{ARTIFACTS}/{prefix}/in/",
            "--dst": f"s3://{ARTIFACTS}/{prefix}/out/",
            "--fail": "no",
            "--job-bookmark-option": "job-bookmark-enable",
        },
    )
    return aws, glue, name, prefix


def _put(aws, prefix: str, file: str, ids: list[int]) -> None:
    body = "id,name\n" + "".join(f"{i},name-{i}\n" for i in ids)
    aws.client("s3").put_object(Bucket=ARTIFACTS, Key=f"{prefix}/in/{file}", Body=body.encode())


def _run(aws, glue, name: str, **arguments: str) -> tuple[dict, list[int]]:
    args = {f"--{k}": v for k, v in arguments.items()}
    if "--bookmark" in args:
        args["--job-bookmark-option"] = f"job-bookmark-{args.pop('--bookmark')}"
    run_id = glue.start_job_run(JobName=name, Arguments=args)["JobRunId"]
    done = wait(glue, name, run_id, timeout=300)
    lines = log_lines(aws, "/aws-glue/jobs/output", run_id)
    read = next((line for line in lines if line.startswith("READ")), None)
    assert read is not None, (done.get("ErrorMessage"), lines[-20:])
    return done, json.loads(re.sub(r"^READ ", "", read))


def _bookmark_run(glue, name: str) -> int:
    return glue.get_job_bookmark(JobName=name)["JobBookmarkEntry"]["Run"]


def test_the_console_script_runs_unchanged_and_bookmarks_read_only_new_files(console_job):
    aws, glue, name, prefix = console_job
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_job_bookmark(JobName=name)  # no run has committed yet
    _put(aws, prefix, "a.csv", [1, 2])
    first, read = _run(aws, glue, name)
    assert first["JobRunState"] == "SUCCEEDED", first.get("ErrorMessage")
    assert read == [1, 2]
    entry = glue.get_job_bookmark(JobName=name)["JobBookmarkEntry"]
    assert (entry["JobName"], entry["Run"], entry["RunId"]) == (name, 1, first["Id"])
    assert f"s3://{ARTIFACTS}/{prefix}/in/a.csv" in entry["JobBookmark"]

    _put(aws, prefix, "b.csv", [3])
    second, read = _run(aws, glue, name)
    assert read == [3]  # only the file that came since
    entry = glue.get_job_bookmark(JobName=name)["JobBookmarkEntry"]
    assert (entry["Run"], entry["PreviousRunId"]) == (2, first["Id"])

    # Paused: reads what is new since the bookmark, and leaves the bookmark where it was.
    _put(aws, prefix, "c.csv", [4])
    assert _run(aws, glue, name, bookmark="pause")[1] == [4]
    assert _bookmark_run(glue, name) == 2
    # A run that fails after reading, before job.commit(): nothing saved.
    failed, read = _run(aws, glue, name, fail="yes")
    assert failed["JobRunState"] == "FAILED" and read == [4]
    assert _bookmark_run(glue, name) == 2
    assert _run(aws, glue, name)[1] == [4]
    assert _bookmark_run(glue, name) == 3

    # A changed object is new again; disabled reads all and saves nothing.
    _put(aws, prefix, "a.csv", [1, 2, 10])
    assert _run(aws, glue, name)[1] == [1, 2, 10]
    assert _run(aws, glue, name, bookmark="disable")[1] == [1, 2, 3, 4, 10]
    assert _bookmark_run(glue, name) == 4

    reset = glue.reset_job_bookmark(JobName=name)["JobBookmarkEntry"]
    assert reset["JobName"] == name
    assert _run(aws, glue, name)[1] == [1, 2, 3, 4, 10]  # everything, once more

    # What the sink appended, run after run, is all there.
    s3 = aws.client("s3")
    written = s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=f"{prefix}/out/")["Contents"]
    assert any(o["Key"].endswith(".parquet") for o in written)


def test_bookmark_calls_for_an_unknown_job_are_entity_not_found(env):
    _, glue = env
    for call in (glue.get_job_bookmark, glue.reset_job_bookmark):
        with pytest.raises(glue.exceptions.EntityNotFoundException):
            call(JobName="no-such-job")


FROM_CATALOG = """\
import sys
from awsglue.context import GlueContext
from awsglue.job import Job
from pyspark.context import SparkContext

glueContext = GlueContext(SparkContext.getOrCreate())
job = Job(glueContext)
job.init("catalog", {})
rock = glueContext.create_dynamic_frame.from_catalog(
    database="music", table_name="plays", push_down_predicate="genre = 'rock'",
    transformation_ctx="plays",
)
print("ROCK", sorted((r["track"], r["genre"]) for r in rock.toDF().collect()), flush=True)
glueContext.write_dynamic_frame.from_catalog(frame=rock, database="music", table_name="rock")
job.commit()
"""


def test_from_catalog_reads_the_tables_location_format_and_partitions(env):
    """The catalog's calls go to the emulator's endpoint, which hands them to moto's."""
    aws, glue = env
    prefix = f"catalog-{uuid.uuid4().hex[:6]}"
    s3 = aws.client("s3")
    for genre, tracks in (("rock", ["t1", "t2"]), ("pop", ["t3"])):
        body = "track;plays\n" + "".join(f"{t};1\n" for t in tracks)
        s3.put_object(Bucket=ARTIFACTS, Key=f"{prefix}/plays/genre={genre}/part.csv", Body=body)
    try:
        glue.delete_database(Name="music")
    except glue.exceptions.EntityNotFoundException:
        pass
    glue.create_database(DatabaseInput={"Name": "music"})
    csv_serde = {
        "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
        "Parameters": {"field.delim": ";"},
    }
    glue.create_table(
        DatabaseName="music",
        TableInput={
            "Name": "plays",
            "Parameters": {"classification": "csv", "skip.header.line.count": "1"},
            "PartitionKeys": [{"Name": "genre", "Type": "string"}],
            "StorageDescriptor": {
                "Location": f"s3://{ARTIFACTS}/{prefix}/plays/",
                "SerdeInfo": csv_serde,
                "Columns": [{"Name": "track", "Type": "string"}, {"Name": "plays", "Type": "int"}],
            },
        },
    )
    glue.create_table(
        DatabaseName="music",
        TableInput={
            "Name": "rock",
            "Parameters": {"classification": "parquet"},
            "StorageDescriptor": {"Location": f"s3://{ARTIFACTS}/{prefix}/rock/"},
        },
    )
    assert glue.get_table(DatabaseName="music", Name="plays")["Table"]["Name"] == "plays"
    name = create_job(glue, put_script(aws, "catalog", FROM_CATALOG), command="glueetl")
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    done = wait(glue, name, run_id, timeout=300)
    assert done["JobRunState"] == "SUCCEEDED", done.get("ErrorMessage")
    lines = log_lines(aws, "/aws-glue/jobs/output", run_id)
    assert "ROCK [('t1', 'rock'), ('t2', 'rock')]" in lines
    written = s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=f"{prefix}/rock/")["Contents"]
    assert any(o["Key"].endswith(".parquet") for o in written)
    # A Glue error of moto's comes back as it is.
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName="music", Name="nope")


READS_ALL = """\
import sys
from awsglue.context import GlueContext
from awsglue.utils import getResolvedOptions
from pyspark.context import SparkContext

args = getResolvedOptions(sys.argv, ["src"])
glueContext = GlueContext(SparkContext.getOrCreate())
dyf = glueContext.create_dynamic_frame.from_options(
    "s3", {"paths": [args["src"]]}, "csv", {"withHeader": True}
)
print("IDS", sorted(int(r["id"]) for r in dyf.toDF().collect()), flush=True)
"""


def test_object_keys_that_look_like_globs_are_read_as_names(env):
    """Spark takes [ ] { } * ? in a path for a glob: a key holding them must still be read,
    once, and nothing else with it."""
    aws, glue = env
    prefix = f"odd-{uuid.uuid4().hex[:6]}"
    keys = ["odd [1].csv", "we{ir}d.csv", "star*.csv", "what?.csv", "space name.csv", "ünï.csv"]
    s3 = aws.client("s3")
    for i, key in enumerate(keys):
        s3.put_object(Bucket=ARTIFACTS, Key=f"{prefix}/in/{key}", Body=f"id\n{i}\n".encode())
    s3.put_object(Bucket=ARTIFACTS, Key=f"{prefix}/in/odd 1.csv", Body=b"id\n100\n")  # [1] matches
    name = create_job(
        glue,
        put_script(aws, "odd", READS_ALL),
        command="glueetl",
        DefaultArguments={"--src": f"s3://{ARTIFACTS}/{prefix}/in/"},
    )
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    done = wait(glue, name, run_id, timeout=300)
    assert done["JobRunState"] == "SUCCEEDED", done.get("ErrorMessage")
    lines = log_lines(aws, "/aws-glue/jobs/output", run_id)
    assert f"IDS {sorted([*range(len(keys)), 100])}" in lines, lines


ROUND_TRIPS = """\
import sys
from awsglue.context import GlueContext
from awsglue.dynamicframe import DynamicFrame
from awsglue.utils import getResolvedOptions
from pyspark.context import SparkContext

args = getResolvedOptions(sys.argv, ["root"])
glueContext = GlueContext(SparkContext.getOrCreate())
spark = glueContext.spark_session
rows = spark.createDataFrame([(1, "a;b", "x"), (2, "c", "y")], "id long, name string, part string")
frame = DynamicFrame.fromDF(rows, glueContext, "rows")
for fmt in ("csv", "json", "parquet"):
    where = f"{args['root']}{fmt}/"
    glueContext.write_dynamic_frame.from_options(
        frame=frame, connection_type="s3",
        connection_options={"path": where, "partitionKeys": ["part"]}, format=fmt,
    )
    back = glueContext.create_dynamic_frame.from_options(
        "s3", {"paths": [where], "recurse": True}, fmt, {"withHeader": True}
    ).toDF()
    got = sorted((int(r["id"]), r["name"]) for r in back.collect())
    print("ROUND", fmt, got, flush=True)
"""


def test_each_format_written_by_the_sink_reads_back_as_it_was(env):
    aws, glue = env
    root = f"s3://{ARTIFACTS}/formats-{uuid.uuid4().hex[:6]}/"
    name = create_job(
        glue,
        put_script(aws, "formats", ROUND_TRIPS),
        command="glueetl",
        DefaultArguments={"--root": root},
    )
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    done = wait(glue, name, run_id, timeout=300)
    assert done["JobRunState"] == "SUCCEEDED", done.get("ErrorMessage")
    lines = log_lines(aws, "/aws-glue/jobs/output", run_id)
    for fmt in ("csv", "json", "parquet"):
        assert f"ROUND {fmt} [(1, 'a;b'), (2, 'c')]" in lines, lines
