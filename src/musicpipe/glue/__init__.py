"""The Glue job emulator: the Glue job API on loopback, running the jobs for real.

Laid out as a moto service is: model.py holds Glue's rules (pure functions, the JobRunState
enum) and GlueBackend, which applies them to the state; errors.py the Glue errors with their
codes and HTTP statuses; server.py is the wire only (AWS JSON 1.1). store.py keeps the state
that survives restarts, runner.py runs a job (Spark or Python) and ships its logs, spark.py
knows how Spark reaches S3, warm_spark.py keeps driver JVMs between runs.
"""
