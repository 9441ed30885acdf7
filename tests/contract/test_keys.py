"""The key rule (musicpipe.contract.keys): keys Hadoop or Spark would read as another path."""

from __future__ import annotations

import pytest

from musicpipe.contract.keys import key_problem

# Keys S3 takes but Hadoop's Path or Spark's reader would not read as the object they name.
PATH_LIKE = {
    "streams/../dotdot.csv": "'..' path segment",
    "streams/./dot.csv": "'.' path segment",
    "streams/a/../../x.csv": "'..' path segment",
    "streams//double.csv": "empty path segment",
    "streams/sub//double.csv": "empty path segment",
    "streams/trailing.csv/": "ends with '/'",
    "streams/col:on.csv": "contains ':'",
    "streams/pct%41.csv": "contains '%'",
    "streams/glob*.csv": "contains '*'",
    "streams/glob?.csv": "contains '?'",
    "streams/brace{a}.csv": "contains '{'",
    "streams/com,ma.csv": "contains ','",
    "streams/bracket[1].csv": "contains '['",
    "streams/back\\slash.csv": "contains '\\\\'",
    "streams/tab\t.csv": "control character U+0009",
    "streams/nl\n.csv": "control character U+000A",
    "songs/x.csv": "not a stream file",
}

FINE = [
    "streams/streams1.csv",
    "streams/2026/11/01/part-0.csv",
    "streams/with space.csv",
    "streams/plus+sign.csv",
    "streams/a=b;c@d&e(1)!'~.csv",
    "streams/Müller-ñ-日本.csv",
    "streams/.hidden.csv",
    "streams/x..y.csv",
]


@pytest.mark.parametrize("key", sorted(PATH_LIKE))
def test_path_like_keys_are_refused_with_the_rule_named(key):
    problem = key_problem(key)
    assert problem is not None and PATH_LIKE[key] in problem, problem


@pytest.mark.parametrize("key", FINE)
def test_ordinary_keys_pass(key):
    assert key_problem(key) is None
