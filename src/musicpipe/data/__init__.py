"""Deterministic sample data (docs/data-contract.md §1): songs, users and stream files.

``generator`` builds realistic, seeded data sets of any size (up to benchmark-sized stream
files written in bounded memory); ``bad_samples`` writes the deliberately broken and awkward
files that exercise the validation rules of docs/data-contract.md §2.
"""
