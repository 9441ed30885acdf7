"""The edges to AWS APIs: clients for the local stack, S3 helpers."""
