"""The pipeline's I/O steps, shared by the Glue jobs and the DAG: file tracker, quarantine,
DynamoDB KPI writer, archiver, CloudWatch metrics. boto3 and the standard library only, and
Python 3.9-compatible: the validation job runs on Glue's Python shell."""
