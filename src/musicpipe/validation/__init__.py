"""The validation job (Glue Python shell, Python 3.9), shipped to Glue with the rest of the
package through --extra-py-files: job.py reads the batch's files from S3, validates them with
:mod:`musicpipe.contract.validation`, quarantines the stream files that fail and writes the
report. ``spark_jobs/music_streaming_validation.py`` only wires the arguments and the clients.
Python 3.9-compatible; boto3 and the standard library only."""
