"""The Airflow DAG's configuration and task logic (the DAG file itself is airflow/dags/)."""
