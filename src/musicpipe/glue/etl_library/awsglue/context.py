"""GlueContext over a SparkSession: S3 sources and sinks in csv, json and parquet, with job
bookmarks per ``transformation_ctx``; the Data Catalog, JDBC and other connections raise
NotEmulatedError naming the call."""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import ClientError
from pyspark.context import SparkContext
from pyspark.sql import DataFrame, SparkSession

from awsglue.bookmarks import Bookmarks
from awsglue.dynamicframe import DynamicFrame
from awsglue.errors import not_emulated

FORMATS = ("csv", "json", "parquet", "glueparquet")


class GlueLogger:
    """get_logger(): lines on the run's error log, as Glue's logger writes to the driver's."""

    def _line(self, level: str, message) -> None:
        print(f"GlueLogger {level}: {message}", file=sys.stderr, flush=True)

    def info(self, message) -> None:
        self._line("INFO", message)

    def warn(self, message) -> None:
        self._line("WARN", message)

    warning = warn

    def error(self, message) -> None:
        self._line("ERROR", message)


class GlueContext:
    def __init__(self, sparkContext: SparkContext | None = None, **options) -> None:
        self._sc = sparkContext or SparkContext.getOrCreate()
        self.spark_session = SparkSession(self._sc)
        self.bookmarks = Bookmarks()
        self.create_dynamic_frame = DynamicFrameReader(self)
        self.create_data_frame = DataFrameReader(self)
        self.write_dynamic_frame = DynamicFrameWriter(self)

    def get_logger(self) -> GlueLogger:
        return GlueLogger()

    def getSink(self, connection_type: str, format=None, transformation_ctx="", **options):
        return DataSink(self, connection_type, options)

    # -- reading -------------------------------------------------------------------------
    def create_dynamic_frame_from_options(
        self,
        connection_type,
        connection_options={},
        format=None,
        format_options={},
        transformation_ctx="",
        push_down_predicate="",
        **kwargs,
    ):
        df = self._read(
            connection_type, connection_options, format, format_options, transformation_ctx
        )
        return DynamicFrame(df, self, transformation_ctx)

    def _read(
        self, connection_type, options, format, format_options, ctx, base_path=None
    ) -> DataFrame:
        if connection_type != "s3":
            raise not_emulated(f"a {connection_type!r} source", "only s3 is")
        fmt = _format(format)
        objects = _list_objects(
            options.get("paths") or [], bool(options.get("recurse")), options.get("exclusions")
        )
        urls = sorted(self.bookmarks.new_objects(ctx, objects))
        spark = self.spark_session
        if not urls:
            return spark.createDataFrame([], "struct<>")
        reader = spark.read
        if base_path:  # partition columns from the folder names under the table's location
            reader = reader.option("basePath", base_path)
        if fmt == "csv":
            header = str(format_options.get("withHeader", False)).lower() == "true"
            reader = (
                reader.option("header", header)
                .option("inferSchema", True)
                .option("sep", format_options.get("separator", ","))
                .option("quote", format_options.get("quoteChar", '"'))
                .option("escape", format_options.get("escaper", "\\"))
                .option("multiLine", str(format_options.get("multiLine", False)).lower() == "true")
            )
            df = reader.csv([_s3a(u) for u in urls])
            if not header:  # Glue names header-less columns col0, col1, …
                df = df.toDF(*[f"col{i}" for i in range(len(df.columns))])
            return df
        if fmt == "json":
            multiline = str(format_options.get("multiline", False)).lower() == "true"
            return reader.option("multiLine", multiline).json([_s3a(u) for u in urls])
        return reader.parquet(*[_s3a(u) for u in urls])

    def _read_table(self, database, table_name, ctx, predicate) -> DataFrame:
        table = _table(database, table_name)
        fmt, format_options = _table_format(table)
        location = table["StorageDescriptor"]["Location"]
        keys = [k["Name"] for k in table.get("PartitionKeys", [])]
        options = {"paths": [location], "recurse": bool(keys)}
        df = self._read("s3", options, fmt, format_options, ctx, base_path=location)
        return df.where(predicate) if predicate and df.columns else df

    # -- writing -------------------------------------------------------------------------
    def write_dynamic_frame_from_options(
        self,
        frame,
        connection_type,
        connection_options={},
        format=None,
        format_options={},
        transformation_ctx="",
    ):
        """Appends, as Glue's S3 sink does; ``partitionKeys`` become folders."""
        if connection_type != "s3":
            raise not_emulated(f"a {connection_type!r} sink", "only s3 is")
        path = connection_options.get("path")
        if not path:
            raise ValueError("write_dynamic_frame.from_options: connection_options needs 'path'")
        fmt = _format(format)
        writer = frame.toDF().write.mode("append")
        keys = connection_options.get("partitionKeys") or []
        if keys:
            writer = writer.partitionBy(*keys)
        if fmt == "csv":
            header = str(format_options.get("writeHeader", True)).lower() == "true"
            writer.option("header", header).option("sep", format_options.get("separator", ",")).csv(
                path
            )
        elif fmt == "json":
            writer.json(path)
        else:
            writer.parquet(path)
        return frame

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        raise not_emulated(f"GlueContext.{name}")


class DynamicFrameReader:
    def __init__(self, glue_context: GlueContext) -> None:
        self._ctx = glue_context

    def from_options(
        self,
        connection_type,
        connection_options={},
        format=None,
        format_options={},
        transformation_ctx="",
        push_down_predicate="",
        **kwargs,
    ):
        return self._ctx.create_dynamic_frame_from_options(
            connection_type, connection_options, format, format_options, transformation_ctx
        )

    def from_catalog(
        self,
        database=None,
        table_name=None,
        redshift_tmp_dir="",
        transformation_ctx="",
        push_down_predicate="",
        additional_options={},
        catalog_id=None,
        **kwargs,
    ):
        """The table's S3 location read as from_options would, in the format and with the
        separator and header its definition names; ``push_down_predicate`` filters on its
        partition columns (read from the folder names, as Glue does)."""
        df = self._ctx._read_table(database, table_name, transformation_ctx, push_down_predicate)
        return DynamicFrame(df, self._ctx, transformation_ctx)

    def from_rdd(self, data, name, schema=None, sampleRatio=None):
        df = self._ctx.spark_session.createDataFrame(data, schema, sampleRatio)
        return DynamicFrame(df, self._ctx, name)


class DataFrameReader:
    """create_data_frame: the same sources, as Spark DataFrames."""

    def __init__(self, glue_context: GlueContext) -> None:
        self._ctx = glue_context

    def from_options(
        self,
        connection_type,
        connection_options={},
        format=None,
        format_options={},
        transformation_ctx="",
        **kwargs,
    ):
        return self._ctx._read(
            connection_type, connection_options, format, format_options, transformation_ctx
        )

    def from_catalog(
        self, database=None, table_name=None, transformation_ctx="", push_down_predicate="", **kw
    ):
        return self._ctx._read_table(database, table_name, transformation_ctx, push_down_predicate)


class DynamicFrameWriter:
    def __init__(self, glue_context: GlueContext) -> None:
        self._ctx = glue_context

    def from_options(
        self,
        frame,
        connection_type,
        connection_options={},
        format=None,
        format_options={},
        transformation_ctx="",
    ):
        return self._ctx.write_dynamic_frame_from_options(
            frame, connection_type, connection_options, format, format_options, transformation_ctx
        )

    def from_catalog(
        self,
        frame,
        database=None,
        table_name=None,
        redshift_tmp_dir="",
        transformation_ctx="",
        **kw,
    ):
        """Appended to the table's S3 location in its format (its partition keys as folders)."""
        table = _table(database, table_name)
        fmt, format_options = _table_format(table)
        keys = [k["Name"] for k in table.get("PartitionKeys", [])]
        options = {"path": table["StorageDescriptor"]["Location"], "partitionKeys": keys}
        return self._ctx.write_dynamic_frame_from_options(frame, "s3", options, fmt, format_options)


class DataSink:
    """getSink(...) basics: setFormat, then writeFrame; catalog updates are not emulated."""

    def __init__(self, glue_context: GlueContext, connection_type: str, options: dict) -> None:
        self._ctx, self._type, self._options = glue_context, connection_type, dict(options)
        self._format = "parquet"
        self._format_options: dict = {}

    def setFormat(self, format, **options) -> None:
        self._format, self._format_options = format, options

    def setCatalogInfo(self, *args, **kwargs) -> None:
        raise not_emulated("DataSink.setCatalogInfo", "the emulator has no Data Catalog")

    def writeFrame(self, dynamic_frame, info=""):
        return self._ctx.write_dynamic_frame_from_options(
            dynamic_frame, self._type, self._options, self._format, self._format_options
        )


def _table(database, table_name) -> dict:
    """The catalog's table (the emulator's endpoint serves the catalog: moto's)."""
    if not database or not table_name:
        raise ValueError("from_catalog: give database and table_name")
    return dict(boto3.client("glue").get_table(DatabaseName=database, Name=table_name)["Table"])


def _table_format(table: dict) -> tuple[str, dict]:
    """The table's format (its ``classification``, else its SerDe's) and its CSV options."""
    params = table.get("Parameters", {})
    descriptor = table.get("StorageDescriptor", {})
    serde = descriptor.get("SerdeInfo", {})
    library = (serde.get("SerializationLibrary") or "").lower()
    fmt = params.get("classification") or (
        "parquet" if "parquet" in library else "json" if "json" in library else "csv"
    )
    serde_params = serde.get("Parameters", {})
    options = {
        "separator": serde_params.get("field.delim") or serde_params.get("separatorChar") or ",",
        "withHeader": params.get("skip.header.line.count") == "1",
    }
    return fmt, options


def _format(name) -> str:
    fmt = (name or "").lower()
    if fmt not in FORMATS:
        raise not_emulated(f"format {name!r}", f"the S3 formats are {', '.join(FORMATS)}")
    return "parquet" if fmt == "glueparquet" else fmt


GLOB_CHARACTERS = re.compile(r"([\\*?\[\]{}])")


def _s3a(url: str) -> str:
    """An object's URL as Spark must get it: its name, not a glob (Spark takes * ? [ ] { }
    for one, so "odd [1].csv" would read "odd 1.csv"). s3:// goes through S3A already."""
    return GLOB_CHARACTERS.sub(r"\\\1", url)


def _list_objects(paths, recurse: bool, exclusions) -> dict[str, str]:
    """s3://bucket/key → ETag of each object the paths name: an object itself, or the objects
    of a folder (with ``recurse``, of its sub-folders too), less hidden ones (``_``, ``.``) and
    those the ``exclusions`` globs match."""
    if isinstance(exclusions, str):
        exclusions = json.loads(exclusions)
    s3 = boto3.client("s3")
    found: dict[str, str] = {}
    for path in paths:
        parts = urlsplit(path)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if key and not key.endswith("/"):
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
                found[f"s3://{bucket}/{key}"] = head["ETag"]
                continue
            except ClientError:
                key += "/"  # a folder named without its slash
        paginator = s3.get_paginator("list_objects_v2")
        pages = (
            paginator.paginate(Bucket=bucket, Prefix=key)
            if recurse  # else a folder's own objects only (its sub-folders are prefixes)
            else paginator.paginate(Bucket=bucket, Prefix=key, Delimiter="/")
        )
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if not name or name.startswith(("_", ".")):
                    continue
                found[f"s3://{bucket}/{obj['Key']}"] = obj["ETag"]
    return {
        url: etag
        for url, etag in found.items()
        if not any(fnmatch.fnmatch(url, glob) for glob in exclusions or [])
    }
