"""The Spark side of the ETL job (Glue 5.1: Spark 3.5, Python 3.11), shipped to Glue with the
rest of the package through --extra-py-files. transform.py cleans, checks and enriches
stream rows (no S3 call of its own), store.py reads raw headers and keeps the enriched events
in S3, kpis.py aggregates them, job.py runs the steps in order with the file tracker."""
