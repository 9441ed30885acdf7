"""The Glue job emulator: the Glue job API on loopback, running the jobs for real.

model.py holds Glue's semantics (pure), store.py the state that survives restarts, runner.py
runs a job (spark-submit or Python) and ships its logs, server.py speaks the AWS JSON 1.1
protocol, spark.py knows how Spark reaches S3.
"""
