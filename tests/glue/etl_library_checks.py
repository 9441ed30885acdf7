"""Run as a script with musicpipe's Glue ETL library first on PYTHONPATH (the test does):
each DynamicFrame method and transform against real Spark, compared with the same work done
in plain DataFrames. Prints PASS <name> or FAIL <name>: <why> per check."""

import sys
import traceback

from awsglue.context import GlueContext
from awsglue.dynamicframe import DynamicFrame
from awsglue.errors import NotEmulatedError
from awsglue.transforms import (
    ApplyMapping,
    DropFields,
    DropNullFields,
    Filter,
    Join,
    RenameField,
    ResolveChoice,
    SelectFields,
)
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = (
    SparkSession.builder.master("local[1]")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.session.timeZone", "UTC")
    .getOrCreate()
)
glue = GlueContext(spark.sparkContext)
df = spark.createDataFrame(
    [("t1", "rock", "12", None), ("t2", "pop", "7", None), ("t3", "rock", "30", None)],
    "track_id string, genre string, plays string, note string",
)
genres = spark.createDataFrame([("rock", "loud"), ("jazz", "smooth")], "name string, mood string")
dyf = DynamicFrame.fromDF(df, glue, "tracks")


def rows(frame):
    data = frame.toDF() if isinstance(frame, DynamicFrame) else frame
    return sorted(tuple(r) for r in data.collect())


def same(a, b):
    left = a.toDF() if isinstance(a, DynamicFrame) else a
    assert left.columns == b.columns, (left.columns, b.columns)
    assert rows(left) == rows(b), (rows(left), rows(b))


CHECKS = {
    "fromDF_toDF": lambda: same(dyf, df),
    "count": lambda: _equal(dyf.count(), df.count()),
    "printSchema_show": lambda: (dyf.printSchema(), dyf.show(2)),
    "select_fields": lambda: same(
        dyf.select_fields(["genre", "track_id"]), df.select("genre", "track_id")
    ),
    "SelectFields": lambda: same(
        SelectFields.apply(frame=dyf, paths=["plays"]), df.select("plays")
    ),
    "drop_fields": lambda: same(dyf.drop_fields(["note"]), df.drop("note")),
    "DropFields": lambda: same(
        DropFields.apply(frame=dyf, paths=["note", "plays"]), df.drop("note", "plays")
    ),
    "rename_field": lambda: same(
        dyf.rename_field("genre", "style"), df.withColumnRenamed("genre", "style")
    ),
    "RenameField": lambda: same(
        RenameField.apply(frame=dyf, old_name="plays", new_name="n"),
        df.withColumnRenamed("plays", "n"),
    ),
    "filter": lambda: same(
        dyf.filter(lambda r: r["genre"] == "rock"), df.where(F.col("genre") == "rock")
    ),
    "Filter": lambda: same(
        Filter.apply(frame=dyf, f=lambda r: int(r["plays"]) > 10),
        df.where(F.col("plays").cast("int") > 10),
    ),
    "map": lambda: same(
        dyf.drop_fields(["note"]).map(lambda r: {**r, "plays": int(r["plays"]) * 2}),
        df.drop("note").withColumn("plays", (F.col("plays").cast("long") * 2)),
    ),
    "apply_mapping": lambda: same(
        dyf.apply_mapping(
            [("track_id", "string", "id", "string"), ("plays", "string", "plays", "long")]
        ),
        df.select(F.col("track_id").alias("id"), F.col("plays").cast("bigint").alias("plays")),
    ),
    "ApplyMapping": lambda: same(
        ApplyMapping.apply(frame=dyf, mappings=[("genre", "string", "g", "string")]),
        df.select(F.col("genre").alias("g")),
    ),
    "resolveChoice_cast": lambda: same(
        dyf.resolveChoice(specs=[("plays", "cast:int")]),
        df.withColumn("plays", F.col("plays").cast("int")),
    ),
    "ResolveChoice": lambda: same(
        ResolveChoice.apply(frame=dyf, specs=[("plays", "project:long")]),
        df.withColumn("plays", F.col("plays").cast("bigint")),
    ),
    "resolveChoice_make_struct_refused": lambda: _raises(
        NotEmulatedError, lambda: dyf.resolveChoice(specs=[("plays", "make_struct")])
    ),
    "join": lambda: same(
        dyf.join(["genre"], ["name"], DynamicFrame.fromDF(genres, glue, "g")),
        df.alias("l")
        .join(genres.alias("r"), F.col("l.genre") == F.col("r.name"))
        .select("l.*", "r.*"),
    ),
    "Join": lambda: same(
        Join.apply(dyf, DynamicFrame.fromDF(genres, glue, "g"), ["genre"], ["name"]),
        df.alias("l")
        .join(genres.alias("r"), F.col("l.genre") == F.col("r.name"))
        .select("l.*", "r.*"),
    ),
    "DropNullFields": lambda: same(DropNullFields.apply(frame=dyf), df.drop("note")),
    "union": lambda: same(dyf.union(dyf), df.unionByName(df)),
    "unknown_method_refused": lambda: _raises(
        NotEmulatedError, lambda: dyf.relationalize("root", "s3://x/")
    ),
}


def _equal(a, b):
    assert a == b, (a, b)


def _raises(kind, call):
    try:
        call()
    except kind as exc:
        assert "is not emulated" in str(exc), exc
        return
    raise AssertionError(f"{kind.__name__} not raised")


for name, check in CHECKS.items():
    try:
        check()
        print("PASS", name, flush=True)
    except Exception:
        print("FAIL", name + ":", traceback.format_exc().replace("\n", " | "), flush=True)
spark.stop()
sys.exit(0)
