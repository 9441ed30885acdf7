"""The data contract (docs/data-contract.md) as plain functions.

This subpackage is shipped to the Glue jobs (``--extra-py-files``). The validation job runs on
Glue's Python shell 3.9, so everything here stays Python 3.9-compatible and stdlib-only.
"""
