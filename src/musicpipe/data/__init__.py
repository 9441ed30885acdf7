"""Deterministic sample data (docs/data-contract.md §1): songs, users and stream files.

``generator`` builds realistic, seeded data sets of any size and the committed sample set from
its parts: ``common`` (sizes, random streams, name words, random/time/CSV helpers),
``songs``, ``users``, ``catalogue`` (the ids streams may reference) and ``streams``
(benchmark-sized stream files written in bounded memory). ``bad_samples`` writes the
deliberately broken and awkward files that exercise the validation rules of
docs/data-contract.md §2; it builds on the parts, and ``generator`` on it.
"""
