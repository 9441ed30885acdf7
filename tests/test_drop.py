"""Which raw prefix a CSV goes to, told by its header; bad arguments upload nothing."""

from __future__ import annotations

import pytest

from musicpipe.drop import DropError, plan_drops

STREAMS = "user_id,track_id,listen_time\n1,t1,2026-11-01 10:00:00\n"
SONGS = ",track_id,artists,album_name,track_name,popularity,track_genre\n0,t1,A;B,x,y,1,pop\n"
USERS = "user_id,user_name,user_age,user_country,created_at\n1,Ann,30,SE,2026-01-01 00:00:00\n"


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def test_kinds_and_keys_with_reference_files_first(tmp_path):
    s1 = write(tmp_path / "streams1.csv", STREAMS)
    songs = write(tmp_path / "tracks_export.csv", SONGS)
    users = write(tmp_path / "people.csv", USERS)
    drops = plan_drops([s1, users, songs])
    assert [(d.path.name, d.kind, d.key) for d in drops] == [
        ("tracks_export.csv", "songs", "songs/songs.csv"),
        ("people.csv", "users", "users/users.csv"),
        ("streams1.csv", "streams", "streams/streams1.csv"),
    ]


def test_header_matching_tolerates_bom_case_spaces_crlf_and_order(tmp_path):
    f = tmp_path / "odd.csv"
    f.write_bytes("\ufeff Listen_Time ,TRACK_ID, user_id ,extra\r\nx,y,z,w\r\n".encode())
    assert plan_drops([f])[0].kind == "streams"


def test_quoted_header_is_honoured(tmp_path):
    f = write(tmp_path / "q.csv", '"user_id","track_id","listen_time"\n')
    assert plan_drops([f])[0].kind == "streams"


def test_folder_stands_for_its_csv_files(tmp_path):
    write(tmp_path / "b.csv", STREAMS)
    write(tmp_path / "a.csv", STREAMS)
    write(tmp_path / "readme.txt", "not a csv")
    assert [d.key for d in plan_drops([tmp_path])] == ["streams/a.csv", "streams/b.csv"]


def test_unmatched_columns_name_the_file_and_what_is_missing(tmp_path):
    good = write(tmp_path / "good.csv", STREAMS)
    bad = write(tmp_path / "bad.csv", "user_id,track_id,played_at\n1,t,2026\n")
    with pytest.raises(DropError) as exc:
        plan_drops([good, bad])
    message = str(exc.value)
    assert f"{bad}: columns [user_id, track_id, played_at] match no input kind" in message
    assert "closest is streams, which lacks listen_time" in message
    assert "--kind" in message


def test_missing_file_and_empty_file_are_reported_together(tmp_path):
    empty = write(tmp_path / "empty.csv", "")
    with pytest.raises(DropError) as exc:
        plan_drops([tmp_path / "nope.csv", empty])
    assert f"{tmp_path / 'nope.csv'}: no such file" in str(exc.value)
    assert f"{empty}: the file is empty" in str(exc.value)


def test_not_utf8_header(tmp_path):
    f = tmp_path / "latin.csv"
    f.write_bytes("user_id,track_id,listen_time,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DropError, match="not UTF-8"):
        plan_drops([f])


def test_explicit_kind_uploads_even_a_bad_file(tmp_path):
    empty = write(tmp_path / "empty.csv", "")
    assert plan_drops([empty], kind="streams")[0].key == "streams/empty.csv"
    with pytest.raises(DropError, match="--kind 'stream' is not a kind"):
        plan_drops([empty], kind="stream")


def test_ambiguous_header_asks_for_kind(tmp_path):
    f = write(
        tmp_path / "all.csv", "user_id,track_id,listen_time,user_name,user_age,user_country\n"
    )
    with pytest.raises(DropError, match="columns of streams and users; pass --kind"):
        plan_drops([f])


def test_two_song_files_would_overwrite_each_other(tmp_path):
    a = write(tmp_path / "a.csv", SONGS)
    b = write(tmp_path / "b.csv", SONGS)
    with pytest.raises(DropError, match="would both become"):
        plan_drops([a, b])
