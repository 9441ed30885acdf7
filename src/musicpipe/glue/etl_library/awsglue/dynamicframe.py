"""DynamicFrame over a Spark DataFrame: the methods Glue scripts use most, each doing what
Glue's does where a DataFrame can (docs/glue-emulator.md has the table). Schemas are Spark's:
a column has one type (Glue's per-record choice types do not arise), so ``resolveChoice``
casts; what needs choice types or the Data Catalog raises NotEmulatedError."""

from __future__ import annotations

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from awsglue.errors import not_emulated

# resolveChoice actions that need Glue's choice types or its catalog.
UNSUPPORTED_CHOICES = ("make_struct", "make_cols", "match_catalog")


def _col(path: str):
    """A field by Glue path: dots go into structs; a name with a dot is `quoted`."""
    return F.col(path)


class DynamicRecord(dict):
    """What ``filter`` and ``map`` hand to their function: the record's fields as a dict."""


class DynamicFrame:
    def __init__(self, df: DataFrame, glue_ctx, name: str = "") -> None:
        self._df = df
        self.glue_ctx = glue_ctx
        self.name = name

    # -- conversions ---------------------------------------------------------------------
    def toDF(self, options=None) -> DataFrame:
        return self._df

    @classmethod
    def fromDF(cls, dataframe: DataFrame, glue_ctx, name: str = "") -> DynamicFrame:
        return cls(dataframe, glue_ctx, name)

    def _new(self, df: DataFrame) -> DynamicFrame:
        return DynamicFrame(df, self.glue_ctx, self.name)

    # -- looking -------------------------------------------------------------------------
    def count(self) -> int:
        return self._df.count()

    def printSchema(self) -> None:
        self._df.printSchema()

    def schema(self):
        return self._df.schema

    def show(self, num_rows: int = 20) -> None:
        self._df.show(num_rows, truncate=False)

    def getNumPartitions(self) -> int:
        return self._df.rdd.getNumPartitions()

    def errorsCount(self) -> int:
        return 0

    def stageErrorsCount(self) -> int:
        return 0

    def assertErrorThreshold(self) -> None:
        return None

    # -- fields --------------------------------------------------------------------------
    def select_fields(
        self, paths, transformation_ctx="", info="", stageThreshold=0, totalThreshold=0
    ):
        present = [p for p in paths if p in self._df.columns or "." in p]
        return self._new(self._df.select(*[_col(p) for p in present]))

    def drop_fields(
        self, paths, transformation_ctx="", info="", stageThreshold=0, totalThreshold=0
    ):
        return self._new(self._df.drop(*paths))

    def rename_field(
        self, oldName, newName, transformation_ctx="", info="", stageThreshold=0, totalThreshold=0
    ):
        if "." in oldName.strip("`"):
            raise not_emulated("DynamicFrame.rename_field of a nested field", oldName)
        return self._new(self._df.withColumnRenamed(oldName.strip("`"), newName.strip("`")))

    def apply_mapping(
        self,
        mappings,
        case_sensitive=False,
        transformation_ctx="",
        info="",
        stageThreshold=0,
        totalThreshold=0,
    ):
        """(source, source type, target, target type) tuples: the targets only, cast."""
        columns = []
        for mapping in mappings:
            if len(mapping) != 4:
                raise ValueError(f"apply_mapping: {mapping!r} is not (source, type, target, type)")
            source, _source_type, target, target_type = mapping
            columns.append(_col(source).cast(_spark_type(target_type)).alias(target))
        return self._new(self._df.select(*columns))

    applyMapping = apply_mapping

    def resolveChoice(
        self,
        specs=None,
        choice="",
        database=None,
        table_name=None,
        transformation_ctx="",
        info="",
        stageThreshold=0,
        totalThreshold=0,
        catalog_id=None,
    ):
        """``cast:<type>`` and ``project:<type>`` (per field, or for all with ``choice``) cast
        the field; on plain Spark every column has one type already."""
        if specs and choice:
            raise ValueError("resolveChoice: give specs or choice, not both")
        pairs = list(specs or []) or [(c, choice) for c in self._df.columns]
        df = self._df
        for path, action in pairs:
            kind, _, target = action.partition(":")
            if kind in UNSUPPORTED_CHOICES:
                raise not_emulated(f"resolveChoice {action!r}", "it needs Glue's choice types")
            if kind not in ("cast", "project") or not target:
                raise ValueError(f"resolveChoice: unknown spec {action!r} for {path!r}")
            if "." in path:
                raise not_emulated(f"resolveChoice of a nested field {path!r}")
            df = df.withColumn(path, F.col(path).cast(_spark_type(target)))
        return self._new(df)

    # -- records -------------------------------------------------------------------------
    def filter(self, f, transformation_ctx="", info="", stageThreshold=0, totalThreshold=0):
        """The records for which ``f(record)`` is true; the schema stays."""
        rdd = self._df.rdd.filter(lambda row: bool(f(DynamicRecord(row.asDict(recursive=True)))))
        spark = self._df.sparkSession
        return self._new(spark.createDataFrame(rdd, self._df.schema))

    def map(
        self,
        f,
        preservesPartitioning=False,
        transformation_ctx="",
        info="",
        stageThreshold=0,
        totalThreshold=0,
    ):
        """``f(record)`` for each record (a dict it may change and return); the new schema is
        inferred from the records, as Glue infers it."""

        def apply(row):
            out = f(DynamicRecord(row.asDict(recursive=True)))
            return Row(**dict(out))

        mapped = self._df.rdd.map(apply)
        spark = self._df.sparkSession
        if mapped.isEmpty():
            return self._new(spark.createDataFrame([], self._df.schema))
        return self._new(spark.createDataFrame(mapped, samplingRatio=1.0))

    def drop_nulls(self):
        """Fields whose every value is null, gone (DropNullFields)."""
        if not self._df.columns:
            return self
        counts = self._df.select([F.count(F.col(c)).alias(c) for c in self._df.columns]).first()
        empty = [c for c in self._df.columns if counts[c] == 0]
        return self._new(self._df.drop(*empty))

    # -- frames --------------------------------------------------------------------------
    def join(
        self,
        paths1,
        paths2,
        frame2,
        transformation_ctx="",
        info="",
        stageThreshold=0,
        totalThreshold=0,
    ):
        """An inner join on paths1 == paths2; both sides' fields are kept, as Glue's Join."""
        if len(paths1) != len(paths2):
            raise ValueError("join: paths1 and paths2 must be as long")
        left, right = self._df.alias("_l"), frame2.toDF().alias("_r")
        condition = [
            F.col(f"_l.{a}") == F.col(f"_r.{b}") for a, b in zip(paths1, paths2, strict=True)
        ]
        return self._new(left.join(right, condition, "inner").select("_l.*", "_r.*"))

    def union(
        self, other_frame, transformation_ctx="", info="", stageThreshold=0, totalThreshold=0
    ):
        return self._new(self._df.unionByName(other_frame.toDF(), allowMissingColumns=True))

    def repartition(
        self, num_partitions, transformation_ctx="", info="", stageThreshold=0, totalThreshold=0
    ):
        return self._new(self._df.repartition(num_partitions))

    def coalesce(
        self,
        num_partitions,
        shuffle=False,
        transformation_ctx="",
        info="",
        stageThreshold=0,
        totalThreshold=0,
    ):
        return self._new(
            self._df.repartition(num_partitions) if shuffle else self._df.coalesce(num_partitions)
        )

    def write(
        self,
        connection_type,
        connection_options={},
        format=None,
        format_options={},
        accumulator_size=0,
    ):
        return self.glue_ctx.write_dynamic_frame_from_options(
            self, connection_type, connection_options, format, format_options
        )

    def __getattr__(self, name: str):
        # Only reached for what this class does not define: Glue's other methods.
        if name.startswith("_"):
            raise AttributeError(name)
        raise not_emulated(f"DynamicFrame.{name}")


def _spark_type(glue_type: str) -> str:
    """A Glue type name as Spark's (Glue says long, double, string, boolean, timestamp…)."""
    return {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint"}.get(
        glue_type.lower(), glue_type
    )
