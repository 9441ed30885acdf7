"""songs.csv: the Kaggle "Spotify Tracks" columns, seeded track ids, artists and names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musicpipe.data.common import (
    DEFAULT_SEED,
    DEFAULT_SONGS,
    KEY_ARTISTS,
    KEY_SONG_ATTRS,
    KEY_TRACK_IDS,
    KEY_TRACK_RANKS,
    bell_integers,
    draw_indices,
    seeded_rng,
    template_names,
    weights_cdf,
    write_csv,
    zipf_weights,
)

# Kaggle "Spotify Tracks" column order; the first column is pandas' unnamed index.
SONGS_HEADER = (
    "",
    "track_id",
    "artists",
    "album_name",
    "track_name",
    "popularity",
    "duration_ms",
    "explicit",
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
    "track_genre",
)
TRACK_ID_LENGTH = 22
_BASE62 = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)

# The 114 genres of the Kaggle data set, in its alphabetical order.
GENRES = tuple(
    """
    acoustic afrobeat alt-rock alternative ambient anime black-metal bluegrass blues brazil
    breakbeat british cantopop chicago-house children chill classical club comedy country dance
    dancehall death-metal deep-house detroit-techno disco disney drum-and-bass dub dubstep edm
    electro electronic emo folk forro french funk garage german gospel goth grindcore groove
    grunge guitar happy hard-rock hardcore hardstyle heavy-metal hip-hop honky-tonk house idm
    indian indie-pop indie industrial iranian j-dance j-idol j-pop j-rock jazz k-pop kids latin
    latino malay mandopop metal metalcore minimal-techno mpb new-age opera pagode party piano
    pop-film pop power-pop progressive-house psych-rock punk-rock punk r-n-b reggae reggaeton
    rock-n-roll rock rockabilly romance sad salsa samba sertanejo show-tunes singer-songwriter
    ska sleep songwriter soul spanish study swedish synth-pop tango techno trance trip-hop
    turkish world-music
    """.split()
)
if len(GENRES) != 114 or len(set(GENRES)) != 114:  # not `assert`: must hold under python -O
    raise RuntimeError(f"expected the 114 Kaggle genres, got {len(set(GENRES))}")

# Artists: primary artist drawn Zipf-like over the artist pool, so popular artists are
# credited on hundreds of tracks and the hourly top artist is a real contest.
ARTIST_ZIPF_OFFSET = 40
ARTISTS_PER_TRACK_POOL = 5  # pool size = songs // 5 (Kaggle: ~31k artist strings, 89k tracks)
MULTI_ARTIST_PER_MILLE = 170  # 17 % of tracks credit several artists, joined by ";"

_ARTIST_TEMPLATES = (
    ("{f} {l}", 30),
    ("The {a} {n}s", 15),
    ("{a} {n}", 12),
    ("{n} {m}", 10),
    ("{f} & The {n}s", 8),
    ("{f} {n}", 8),
    ("DJ {n}", 2),
    ("Lil {n}", 2),
    ("{a} {f}", 6),
    ("{f}, the {n}", 3),
    ("{n}, {m} & {a}", 2),
    ('{f} "{a}" {l}', 2),
)
_TRACK_TEMPLATES = (
    ("{a} {n}", 28),
    ("{n}", 12),
    ("{v} My {n}", 9),
    ("{n} of the {m}", 9),
    ("The {n}", 7),
    ("{v} the {n}", 7),
    ("{a} {n} - Remastered {y}", 5),
    ("{a} {n} (feat. {f} {l})", 5),
    ("{v} On, {f}", 4),
    ("{n}, {m}", 4),
    ('{n} (From "{a} {m}")', 3),
    ('The "{a}" {n}', 2),
    ("{a} {n}, Pt. {k}", 3),
    ("{v} Me {a}", 2),
)
_ALBUM_TEMPLATES = (
    ("{a} {n}s", 30),
    ("{n}", 14),
    ("{a} {n}", 20),
    ("Greatest Hits", 3),
    ("Live at the {n}", 4),
    ("{n} (Deluxe Edition)", 5),
    ("{n}, Vol. {k}", 6),
    ('"{a} {n}" Original Soundtrack', 3),
    ("{y} Sessions", 3),
)
# Share (per mille) of tracks released as singles, whose album name is the track name.
_SINGLES_PER_MILLE = 300


def _random_base62(rng: np.random.Generator, n: int) -> np.ndarray:
    return _BASE62[rng.integers(0, 62, size=(n, TRACK_ID_LENGTH))]


def random_track_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` fresh random 22-char base62 ids (for ids that must *not* be in the catalogue)."""
    return [bytes(row).decode("ascii") for row in _random_base62(rng, n)]


def track_id_bytes(seed: int, n: int) -> np.ndarray:
    """The catalogue's ``n`` unique track ids as an (n, 22) uint8 array of ASCII bytes."""
    rng = seeded_rng(seed, KEY_TRACK_IDS)
    ids = _random_base62(rng, n)
    # 62**22 ≈ 2.7e39 ids, so a collision is practically impossible; redraw anyway so that
    # uniqueness is a guarantee rather than a likelihood.
    while True:
        _, first = np.unique(ids.view(f"S{TRACK_ID_LENGTH}").ravel(), return_index=True)
        if len(first) == n:
            return ids
        repeated = np.setdiff1d(np.arange(n), first)
        ids[repeated] = _random_base62(rng, len(repeated))


def track_ids(seed: int, n: int) -> list[str]:
    """The catalogue's ``n`` track ids, in songs.csv order."""
    return [bytes(row).decode("ascii") for row in track_id_bytes(seed, n)]


def track_ranks(seed: int, n: int) -> np.ndarray:
    """Popularity rank of each track (0 = most played): a seeded shuffle of the catalogue."""
    return seeded_rng(seed, KEY_TRACK_RANKS).permutation(n)


def _artist_pool(seed: int, size: int) -> list[str]:
    """``size`` distinct artist names; list order is popularity order (most popular first)."""
    rng = seeded_rng(seed, KEY_ARTISTS)
    pool: dict[str, None] = {}  # insertion-ordered set: deterministic, unlike set()
    for _ in range(20):
        for name in template_names(rng, 2 * (size - len(pool)), _ARTIST_TEMPLATES):
            if len(pool) < size:
                pool.setdefault(name)
        if len(pool) == size:
            return list(pool)
    # The template space ran out (huge catalogues only): number further names "<name> 2" ...
    base, k = list(pool), 2
    while len(pool) < size:
        for name in base[: size - len(pool)]:
            pool.setdefault(f"{name} {k}")
        k += 1
    return list(pool)


def _song_artists(seed: int, n: int) -> list[str]:
    """The ``artists`` field of each track: a primary artist, sometimes featured ones too."""
    pool = _artist_pool(seed, max(20, n // ARTISTS_PER_TRACK_POOL))
    cdf = weights_cdf(zipf_weights(np.arange(len(pool)), ARTIST_ZIPF_OFFSET))
    rng = seeded_rng(seed, KEY_ARTISTS, 1)
    primary = draw_indices(rng, cdf, n)
    multi = rng.integers(0, 1000, n) < MULTI_ARTIST_PER_MILLE
    extra_count = np.where(multi, 1 + (rng.integers(0, 5, n) == 0), 0)  # 1, sometimes 2
    extras = draw_indices(rng, cdf, 2 * n).reshape(n, 2)
    out = []
    for p, count, ex in zip(primary.tolist(), extra_count.tolist(), extras.tolist(), strict=True):
        names = [pool[p]]
        for e in ex[:count]:
            # A popular artist can be drawn twice; credit them once. A pool-neighbour keeps
            # the track multi-artist.
            e = e if pool[e] not in names else (e + 1) % len(pool)
            if pool[e] not in names:
                names.append(pool[e])
        out.append(";".join(names))
    return out


def _three_significant(values: np.ndarray, scale: int) -> list[float]:
    """values / scale with 3 significant digits, e.g. 0.0322 or 1.01e-06 as in Kaggle.

    Formatting is done on the exactly-divided float and parsed back, which is deterministic.
    """
    return [float(f"{v / scale:.3g}") for v in values.tolist()]


def _song_rows(seed: int, n: int) -> list[tuple[object, ...]]:
    rng = seeded_rng(seed, KEY_SONG_ATTRS)
    ids = track_ids(seed, n)
    ranks = track_ranks(seed, n)
    artists = _song_artists(seed, n)
    track_names = template_names(rng, n, _TRACK_TEMPLATES)
    album_names = template_names(rng, n, _ALBUM_TEMPLATES)
    single = rng.integers(0, 1000, n) < _SINGLES_PER_MILLE
    # Every genre gets n // 114 or n // 114 + 1 tracks, so small catalogues cover all 114.
    genres = rng.permutation(np.arange(n) % len(GENRES))

    # Popularity 0..100 follows the play rank (integer maths), with a little noise.
    remaining = (n - ranks).astype(np.int64)
    popularity = np.clip(100 * remaining * remaining // (n * n) + rng.integers(-3, 4, n), 0, 100)
    duration_ms = bell_integers(rng, n, 90_000, 360_000)
    explicit = rng.integers(0, 1000, n) < 86
    danceability = bell_integers(rng, n, 100, 980) / 1000
    energy = bell_integers(rng, n, 150, 1000, k=2) / 1000
    key = rng.integers(0, 12, n)
    loudness = -bell_integers(rng, n, 1_000, 16_000) / 1000
    mode = (rng.integers(0, 100, n) < 64).astype(np.int64)
    speechiness = np.maximum(rng.integers(0, 10_001, (n, 3)).prod(axis=1) // 10**8, 220) / 10_000
    acousticness = _three_significant(rng.integers(0, 1_000_001, (n, 2)).prod(axis=1), 10**12)
    # Instrumentalness: mostly zero or tiny (Kaggle prints e.g. 1.01e-06), some high.
    kind = rng.integers(0, 100, n)
    mantissa, exponent = rng.integers(100, 1000, n).tolist(), rng.integers(-9, -4, n).tolist()
    tiny = np.array([float(f"{m}e{e}") for m, e in zip(mantissa, exponent, strict=True)])
    high = bell_integers(rng, n, 300, 990, k=2) / 1000
    instrumentalness = np.where(kind < 30, 0.0, np.where(kind < 75, tiny, high))
    liveness = np.maximum(rng.integers(30, 1001, (n, 2)).prod(axis=1) // 1000, 15) / 1000
    valence = bell_integers(rng, n, 30, 990, k=2) / 1000
    tempo = bell_integers(rng, n, 60_000, 190_000) / 1000
    time_signature = np.searchsorted([890, 970, 985, 995], rng.integers(0, 1000, n), "right")
    time_signature = np.array([4, 3, 5, 1, 0])[time_signature]

    columns = [
        range(n),
        ids,
        artists,
        [t if s else a for t, a, s in zip(track_names, album_names, single.tolist(), strict=True)],
        track_names,
        popularity.tolist(),
        duration_ms.tolist(),
        np.where(explicit, "True", "False").tolist(),
        danceability.tolist(),
        energy.tolist(),
        key.tolist(),
        loudness.tolist(),
        mode.tolist(),
        speechiness.tolist(),
        acousticness,
        instrumentalness.tolist(),
        liveness.tolist(),
        valence.tolist(),
        tempo.tolist(),
        time_signature.tolist(),
        [GENRES[g] for g in genres.tolist()],
    ]
    return list(zip(*columns, strict=True))


def write_songs(path: Path, n: int = DEFAULT_SONGS, *, seed: int = DEFAULT_SEED) -> int:
    """Write songs.csv (Kaggle columns and order) with ``n`` tracks; returns the row count."""
    if n < 1:
        raise ValueError("songs must be >= 1")
    write_csv(path, SONGS_HEADER, _song_rows(seed, n))
    return n
