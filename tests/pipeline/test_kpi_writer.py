"""The write_kpis_to_dynamodb step against a real moto server (docs/data-contract.md §5, §6.1)."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from musicpipe.bootstrap import bootstrap
from musicpipe.contract.status import TrackerStatus
from musicpipe.manifest import load_manifest
from musicpipe.pipeline.kpi_writer import (
    BASE_DELAY_SECONDS,
    MAX_DELAY_SECONDS,
    StagingError,
    UnprocessedItemsError,
    genre_history,
    kpi_items_for_date,
    staging_keys,
    write_staged_kpis,
)
from musicpipe.pipeline.tracker import Tracker

PROCESSED, KPI, TRACKER = "trial.data", "kpi.table", "kpi.table_file_tracker"
D1, D2, D3 = "2024-06-01", "2024-06-02", "2024-06-03"


@pytest.fixture
def env(aws, tmp_path):
    bootstrap(aws.client, load_manifest(cwd=tmp_path, environ={}))
    ddb = aws.session.resource("dynamodb", endpoint_url=aws.endpoint, config=aws.config)
    return aws.client("s3"), ddb


# -- staged data -----------------------------------------------------------------------------
def genre_item(date: str, genre: str, plays: int = 3) -> dict:
    return {
        "pk": f"DATE#{date}",
        "sk": f"GENRE#{genre}",
        "date": date,
        "genre": genre,
        "listen_count": plays,
        "unique_listeners": 2,
        "total_listening_time_s": plays * 180,
        "avg_listening_time_per_user_s": 270.25,
        "top_songs": [
            {"rank": 1, "track_id": "t1", "track_name": "Song", "artists": "A;B", "plays": 2},
            {"rank": 2, "track_id": "t2", "track_name": "Other", "artists": "C", "plays": 1},
        ],
        "gsi1pk": f"GENRE#{genre}",
        "gsi1sk": f"DATE#{date}",
    }


def hour_item(date: str, hour: int) -> dict:
    return {
        "pk": f"DATE#{date}",
        "sk": f"HOUR#{hour:02d}",
        "date": date,
        "hour": hour,
        "plays": 4,
        "unique_listeners": 3,
        "track_diversity_index": 0.75,
        "top_artist": "A",
        "top_artist_plays": 2,
    }


def top_genres(date: str, genres: list[str]) -> dict:
    return {
        "pk": f"DATE#{date}",
        "sk": "TOP_GENRES",
        "date": date,
        "genres": [
            {"rank": i, "genre": g, "listen_count": 10 - i} for i, g in enumerate(genres, 1)
        ],
    }


def day(date: str, genres: list[str], hours: list[int]) -> list[dict]:
    return (
        [genre_item(date, g) for g in genres]
        + [top_genres(date, genres)]
        + [hour_item(date, h) for h in hours]
    )


def stage(s3, batch_id, dates, files, items=None, lines=None, item_count=None):
    """Write a batch's staging folder as the ETL does; ``lines`` overrides the JSON lines."""
    manifest_key, items_key = staging_keys(batch_id)
    if lines is None:
        lines = [json.dumps(i) for i in items or []]
    manifest = {
        "batch_id": batch_id,
        "dates": dates,
        "files": [{"file_key": k, "etag": f'"etag-{k}"'} for k in files],
        "item_count": len(lines) if item_count is None else item_count,
    }
    s3.put_object(Bucket=PROCESSED, Key=manifest_key, Body=json.dumps(manifest).encode())
    s3.put_object(Bucket=PROCESSED, Key=items_key, Body=("\n".join(lines) + "\n").encode())


def mark_staged(ddb, batch_id, files):
    tracker = Tracker(ddb, TRACKER)
    for key in files:
        assert tracker.claim(key, f'"etag-{key}"', batch_id) is not None
        tracker.set_status(key, TrackerStatus.STAGED, batch_id, dates=[D1])


def statuses(ddb, files):
    tracker = Tracker(ddb, TRACKER)
    return {k: tracker.get(k)["status"] for k in files}


def table_contents(ddb, keep_updated_at=False) -> dict[tuple[str, str], dict]:
    table = ddb.Table(KPI)
    items, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    out = {}
    for item in items:
        if not keep_updated_at:
            assert item.pop("updated_at")
        out[(item["pk"], item["sk"])] = item
    return out


def run(env, batch_id, **kwargs):
    s3, ddb = env
    kwargs.setdefault("sleep", lambda s: None)
    return write_staged_kpis(s3, ddb, PROCESSED, KPI, TRACKER, batch_id, **kwargs)


# -- fakes -----------------------------------------------------------------------------------
class FlakyResource:
    """Wraps the real DynamoDB resource; ``respond`` decides, per batch_write_item call, which
    requests to hand back as UnprocessedItems (or raises)."""

    def __init__(self, real, respond, on_call=None):
        self.real, self.respond, self.on_call = real, respond, on_call
        self.calls: list[int] = []

    def Table(self, name):  # noqa: N802 - the boto3 resource API
        return self.real.Table(name)

    def batch_write_item(self, RequestItems):  # noqa: N803
        (table, requests), *_ = RequestItems.items()
        self.calls.append(len(requests))
        if self.on_call:
            self.on_call()
        unprocessed = self.respond(len(self.calls), requests)
        done = [r for r in requests if r not in unprocessed]
        if done:
            response = self.real.batch_write_item(RequestItems={table: done})
            assert not response.get("UnprocessedItems")
        return {"UnprocessedItems": {table: unprocessed} if unprocessed else {}}


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "BatchWriteItem")


# -- tests -----------------------------------------------------------------------------------
def test_staged_items_land_whole_and_files_complete(env):
    s3, ddb = env
    files = ["streams/a.csv", "streams/b.csv"]
    items = day(D1, ["pop", "rock"], [0, 13]) + day(D2, ["jazz"], [23])
    stage(s3, "b1", [D1, D2], files, items)
    mark_staged(ddb, "b1", files)

    result = run(env, "b1")

    assert (result.items_written, result.items_deleted) == (len(items), 0)
    assert result.dates == [D1, D2]
    assert result.files_completed == files and result.files_skipped == []
    assert statuses(ddb, files) == {k: TrackerStatus.COMPLETED for k in files}
    table = table_contents(ddb)
    assert set(table) == {(i["pk"], i["sk"]) for i in items}
    pop = table[(f"DATE#{D1}", "GENRE#pop")]
    assert pop["listen_count"] == 3 and isinstance(pop["listen_count"], Decimal)
    assert pop["avg_listening_time_per_user_s"] == Decimal("270.25")
    assert pop["top_songs"][0] == {
        "rank": 1,
        "track_id": "t1",
        "track_name": "Song",
        "artists": "A;B",
        "plays": 2,
    }
    assert table[(f"DATE#{D1}", "HOUR#13")]["track_diversity_index"] == Decimal("0.75")
    assert table[(f"DATE#{D2}", "TOP_GENRES")]["genres"][0]["genre"] == "jazz"


def test_rerun_gives_the_same_table(env):
    s3, ddb = env
    stage(s3, "b1", [D1, D2], ["streams/a.csv"], day(D1, ["pop"], [1]) + day(D2, ["rock"], [2]))
    mark_staged(ddb, "b1", ["streams/a.csv"])
    run(env, "b1")
    first = table_contents(ddb)
    again = run(env, "b1")
    assert table_contents(ddb) == first
    assert again.items_deleted == 0
    assert statuses(ddb, ["streams/a.csv"]) == {"streams/a.csv": TrackerStatus.COMPLETED}


def test_missing_gsi_keys_are_filled_in(env):
    s3, ddb = env
    item = genre_item(D1, "pop")
    del item["gsi1pk"], item["gsi1sk"]
    stage(s3, "b1", [D1], [], [item])
    run(env, "b1")
    [stored] = genre_history(ddb, KPI, "pop")
    assert (stored["gsi1pk"], stored["gsi1sk"]) == ("GENRE#pop", f"DATE#{D1}")


def test_recomputed_date_loses_vanished_genres_and_hours_other_dates_untouched(env):
    s3, ddb = env
    stage(
        s3,
        "b1",
        [D1, D2, D3],
        ["streams/a.csv"],
        day(D1, ["pop", "rock", "jazz"], [0, 5, 9]) + day(D2, ["pop"], [1]) + day(D3, ["pop"], [3]),
    )
    mark_staged(ddb, "b1", ["streams/a.csv"])
    run(env, "b1")
    d2_before = {k: v for k, v in table_contents(ddb, keep_updated_at=True).items() if D2 in k[0]}

    # A re-delivered file removed every rock event of D1, hour 05, and all of D3.
    new_d1 = day(D1, ["pop", "jazz"], [0, 9])
    stage(s3, "b2", [D1, D3], ["streams/b.csv"], new_d1)
    mark_staged(ddb, "b2", ["streams/b.csv"])
    result = run(env, "b2")

    table = table_contents(ddb, keep_updated_at=True)
    assert {k for k in table if D1 in k[0]} == {(i["pk"], i["sk"]) for i in new_d1}
    assert not [k for k in table if D3 in k[0]]
    assert {k: v for k, v in table.items() if D2 in k[0]} == d2_before
    assert result.items_deleted == 2 + 3  # GENRE#rock, HOUR#05; D3's genre, top, hour
    assert result.dates == [D1, D3]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"pk": "DATE#2024-06-01", "sk": "HOUR#01", "plays": NaN}', "line 2: .*NaN"),
        ('{"pk": "DATE#2024-06-09", "sk": "HOUR#01"}', "line 2: .*not in the manifest"),
        ('{"pk": "DATE#2024-06-01", "sk": "MINUTE#1"}', "line 2: sk must be"),
        ('{"pk": "DATE#2024-06-01", "sk": "TOP_GENRES"}', r"line 2: .*already staged on line 1"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ('{"pk": "DATE#2024-06-01", "sk": ', "line 2: not a valid item"),
    ],
)
def test_invalid_staged_line_writes_nothing_and_leaves_files_staged(env, line, message):
    s3, ddb = env
    first = json.dumps(top_genres(D1, ["pop"]))
    stage(s3, "b1", [D1], ["streams/a.csv"], lines=[first, line])
    mark_staged(ddb, "b1", ["streams/a.csv"])
    with pytest.raises(StagingError, match=message):
        run(env, "b1")
    assert table_contents(ddb) == {}
    assert statuses(ddb, ["streams/a.csv"]) == {"streams/a.csv": TrackerStatus.STAGED}


def test_item_count_mismatch_and_missing_manifest_are_refused(env):
    s3, ddb = env
    stage(s3, "b1", [D1], [], day(D1, ["pop"], [1]), item_count=99)
    with pytest.raises(StagingError, match="item_count=99"):
        run(env, "b1")
    with pytest.raises(StagingError, match="no staging manifest at s3://trial.data/kpis/staging/"):
        run(env, "nope")
    assert table_contents(ddb) == {}


def test_write_failure_midway_leaves_files_staged_and_a_rerun_completes(env):
    s3, ddb = env
    files = ["streams/a.csv"]
    items = day(D1, [f"g{i:02d}" for i in range(40)], list(range(24)))  # 65 items, 3 chunks
    stage(s3, "b1", [D1], files, items)
    mark_staged(ddb, "b1", files)

    def respond(call, requests):
        if call == 2:
            raise client_error("ValidationException")
        return []

    broken = FlakyResource(ddb, respond)
    with pytest.raises(ClientError, match="ValidationException"):
        run((s3, broken), "b1")
    assert len(table_contents(ddb)) == 25  # the first chunk went in
    assert statuses(ddb, files) == {"streams/a.csv": TrackerStatus.STAGED}

    result = run(env, "b1")
    assert result.items_written == 65 and len(table_contents(ddb)) == 65
    assert statuses(ddb, files) == {"streams/a.csv": TrackerStatus.COMPLETED}


def test_files_stay_staged_while_items_are_written(env):
    s3, ddb = env
    files = ["streams/a.csv", "streams/b.csv"]
    stage(s3, "b1", [D1], files, day(D1, [f"g{i}" for i in range(30)], [1]))
    mark_staged(ddb, "b1", files)
    seen = []
    resource = FlakyResource(
        ddb, lambda call, requests: [], on_call=lambda: seen.append(statuses(ddb, files))
    )
    run((s3, resource), "b1")
    assert len(seen) == 2 and all(s == {k: TrackerStatus.STAGED for k in files} for s in seen)
    assert statuses(ddb, files) == {k: TrackerStatus.COMPLETED for k in files}


def test_unprocessed_items_are_retried_with_exponential_backoff(env):
    s3, ddb = env
    items = day(D1, [f"g{i:02d}" for i in range(30)], [1, 2])  # 33 items: chunks of 25 and 8
    stage(s3, "b1", [D1], ["streams/a.csv"], items)
    mark_staged(ddb, "b1", ["streams/a.csv"])

    def respond(call, requests):  # the first 3 calls leave half their requests undone
        return requests[len(requests) // 2 :] if call <= 3 else []

    resource = FlakyResource(ddb, respond)
    sleeps: list[float] = []
    result = run((s3, resource), "b1", sleep=sleeps.append, rng=lambda: 1.0)

    assert result.items_written == 33
    assert len(table_contents(ddb)) == 33
    assert resource.calls == [25, 13, 7, 4, 8]  # chunk 1 shrinks, then chunk 2 in one go
    assert sleeps == pytest.approx([0.05, 0.1, 0.2])
    assert statuses(ddb, ["streams/a.csv"]) == {"streams/a.csv": TrackerStatus.COMPLETED}


def test_backoff_is_full_jitter_within_exponential_bounds(env):
    s3, ddb = env
    stage(s3, "b1", [D1], [], day(D1, ["pop"], [1]))
    resource = FlakyResource(ddb, lambda call, reqs: reqs[:1] if call <= 8 else [])
    sleeps: list[float] = []
    rng = random.Random(7).random
    run((s3, resource), "b1", sleep=sleeps.append, rng=rng)
    assert len(sleeps) == 8
    bounds = [min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2**n) for n in range(8)]
    assert all(0 <= s <= b for s, b in zip(sleeps, bounds, strict=True))
    assert len(set(sleeps)) == 8  # jittered, not a fixed schedule
    assert len(table_contents(ddb)) == 3


def test_gives_up_after_max_attempts_and_leaves_files_staged(env):
    s3, ddb = env
    items = day(D1, [f"g{i:02d}" for i in range(30)], [1])  # 32 items
    stage(s3, "b1", [D1], ["streams/a.csv"], items)
    mark_staged(ddb, "b1", ["streams/a.csv"])
    resource = FlakyResource(ddb, lambda call, reqs: reqs[-3:])  # 3 always come back
    sleeps: list[float] = []
    with pytest.raises(UnprocessedItemsError, match=r"3 item\(s\) still unprocessed") as info:
        run((s3, resource), "b1", sleep=sleeps.append, rng=lambda: 1.0)
    assert info.value.unprocessed == 3 and info.value.not_attempted == 7
    assert len(resource.calls) == 10
    assert sleeps == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    assert statuses(ddb, ["streams/a.csv"]) == {"streams/a.csv": TrackerStatus.STAGED}


def test_throttling_that_botocore_gave_up_on_is_retried_then_other_errors_raise(env):
    s3, ddb = env
    stage(s3, "b1", [D1], [], day(D1, ["pop"], [1]))

    def respond(call, requests):
        if call <= 2:
            raise client_error("ProvisionedThroughputExceededException")
        return []

    sleeps: list[float] = []
    result = run((s3, FlakyResource(ddb, respond)), "b1", sleep=sleeps.append, rng=lambda: 1.0)
    assert result.items_written == 3 and sleeps == pytest.approx([0.05, 0.1])


def test_file_claimed_by_a_newer_batch_is_not_completed(env):
    s3, ddb = env
    files = ["streams/a.csv", "streams/b.csv"]
    stage(s3, "b1", [D1], files, day(D1, ["pop"], [1]))
    mark_staged(ddb, "b1", files)
    tracker = Tracker(ddb, TRACKER)
    # b.csv was re-uploaded and claimed by batch b2 before the KPI step of b1 ran.
    tracker.table.update_item(
        Key={"file_key": "streams/b.csv"},
        UpdateExpression="SET batch_id = :b, #s = :p",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":b": "b2", ":p": "PROCESSING"},
    )
    result = run(env, "b1")
    assert result.files_completed == ["streams/a.csv"]
    assert result.files_skipped == ["streams/b.csv"]
    assert statuses(ddb, files) == {
        "streams/a.csv": TrackerStatus.COMPLETED,
        "streams/b.csv": "PROCESSING",
    }


class CountingResource:
    def __init__(self, real):
        self.real, self.queries = real, []

    def Table(self, name):  # noqa: N802
        table = self.real.Table(name)
        outer = self

        class Counting:
            def query(self, **kwargs):
                outer.queries.append(kwargs)
                return table.query(**kwargs)

        return Counting()


def test_one_query_reads_a_day_and_one_gsi_query_reads_a_genre(env):
    s3, ddb = env
    stage(
        s3,
        "b1",
        [D1, D2, D3],
        [],
        day(D1, ["pop", "rock"], [0, 23]) + day(D2, ["rock"], [4]) + day(D3, ["pop"], [7]),
    )
    run(env, "b1")

    counting = CountingResource(ddb)
    items = kpi_items_for_date(counting, KPI, D1)
    assert [i["sk"] for i in items] == [
        "GENRE#pop",
        "GENRE#rock",
        "HOUR#00",
        "HOUR#23",
        "TOP_GENRES",
    ]
    assert len(counting.queries) == 1 and "IndexName" not in counting.queries[0]

    counting.queries.clear()
    history = genre_history(counting, KPI, "pop")
    assert [(i["date"], i["genre"]) for i in history] == [(D1, "pop"), (D3, "pop")]
    assert history[0]["listen_count"] == 3
    assert len(counting.queries) == 1 and counting.queries[0]["IndexName"] == "gsi1"
    assert kpi_items_for_date(ddb, KPI, "2024-01-01") == []
