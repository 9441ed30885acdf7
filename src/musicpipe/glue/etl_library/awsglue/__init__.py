"""musicpipe's stand-in for the Glue ETL Python library on plain Spark (see README.md)."""

from awsglue.dynamicframe import DynamicFrame

__all__ = ["DynamicFrame"]
