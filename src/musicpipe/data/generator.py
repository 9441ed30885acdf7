"""Seeded generator for songs.csv, users.csv and stream files (docs/data-contract.md §1).

Determinism: every random draw comes from ``numpy.random.Generator(PCG64(...))``, with the
stream keyed by ``(seed, purpose, ...)`` through a ``SeedSequence`` spawn key. Each part of a
data set therefore has its own independent stream: changing the number of stream files does
not change the songs, and a benchmark-sized streams file can be generated without reading
songs.csv back (the track ids are re-derived from the seed).

Portability: only integer draws (``integers``, ``random``, ``permutation``, ``choice``) and
exact arithmetic (integer maths, one division, sequential sums) shape the output. No
``log``/``exp``-based distributions are used, because their results can differ in the last bit
between CPUs and libm builds, and the committed sample set must be byte-identical everywhere.

Bounded memory: stream files are generated and encoded ``CHUNK_ROWS`` rows at a time with
vectorised numpy code and appended to the file, so a 10 M-row file never lives in memory.
"""

from __future__ import annotations

import calendar
import csv
import dataclasses
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from musicpipe.contract.columns import SONGS, USERS, column_positions, missing_columns

# --------------------------------------------------------------------------------------------
# Sizes and formats
# --------------------------------------------------------------------------------------------

DEFAULT_SEED = 42
# The real data (docs/data-contract.md §1): 89,741 distinct Kaggle tracks, 50,000 users,
# 11,346 rows a file.
DEFAULT_SONGS = 89_741
DEFAULT_USERS = 50_000
DEFAULT_STREAM_FILES = 3
DEFAULT_ROWS_PER_FILE = 11_346
DEFAULT_START_DATE = date(2026, 11, 1)

# Stream files are generated and written this many rows at a time. It bounds memory, and it is
# part of the output's definition (each chunk has its own random stream): changing it changes
# the bytes of files larger than one chunk.
CHUNK_ROWS = 250_000

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
USERS_HEADER = ("user_id", "user_name", "user_age", "user_country", "created_at")
STREAMS_HEADER = ("user_id", "track_id", "listen_time")

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
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

# --------------------------------------------------------------------------------------------
# Shape of the data
# --------------------------------------------------------------------------------------------

# Plays are Zipf-like over the whole catalogue: track of popularity rank r (0 = hottest) has
# weight 1 / (r + offset). The offset flattens the head so that even the hottest track gets
# only a handful of plays in an 11,346-row file: most played tracks are played once or twice
# and ties are the norm, as in the real files. (Exponent 1 keeps the maths exact: no pow.)
TRACK_ZIPF_OFFSET = 300
# Artists: primary artist drawn Zipf-like over the artist pool, so popular artists are
# credited on hundreds of tracks and the hourly top artist is a real contest.
ARTIST_ZIPF_OFFSET = 40
ARTISTS_PER_TRACK_POOL = 5  # pool size = songs // 5 (Kaggle: ~31k artist strings, 89k tracks)
MULTI_ARTIST_PER_MILLE = 170  # 17 % of tracks credit several artists, joined by ";"
# Users: activity Zipf-like over a seeded order of users, giving a few heavy listeners.
USER_ZIPF_OFFSET = 200
# Relative listening per UTC hour 0..23: quiet at night, a lunchtime bump, an evening peak.
HOUR_WEIGHTS = np.array(
    [9, 6, 4, 3, 3, 4, 7, 11, 14, 14, 14, 15, 17, 16, 15, 15, 17, 20, 23, 26, 28, 27, 22, 15],
    dtype=np.float64,
)
# Cross-file duplicates copy events from the last rows of the previous file.
_REDELIVERY_TAIL = 1_000
# Users signed up between this date and the first streamed day.
_USERS_SINCE = date(2019, 1, 1)

ADJECTIVES = """
Electric Golden Broken Silent Neon Midnight Wild Lonely Crimson Velvet Endless Paper Hollow
Burning Frozen Little Summer Winter Blue Black Silver Sweet Bitter Lost Holy Secret Dancing
Falling Rising Lucky Crazy Gentle Savage Honest Faded Hidden Heavy Quiet Northern Southern
Brave Cosmic Dusty Empty Fragile Glass Happy Liquid Magic Mellow Perfect Purple Restless
Rusty Shiny Sleepy Strange Tender Violet Wicked Young Café Über
""".split()
NOUNS = """
Heart Fire River Dream Night City Rain Ocean Star Mirror Ghost Garden Highway Thunder Love
Echo Shadow Horizon Whisper Storm Angel Desert Island Memory Window Satellite Paradise
Diamond Kingdom Lullaby Feather Harbor Canyon Signal Engine Rose Moon Sun Wolf Tiger Circus
Carousel Letter Promise Revolution Parade Blossom Valley Tide Flame Lantern Bridge Castle
Compass Comet Daydream Frontier Galaxy Hurricane Jungle Meadow Melody Oasis Orchard Pilot
Rocket Runaway Season Siren Sparrow Thief Voyage Wave Wildfire Corazón Niño Sakura Fjord
""".split()
VERBS = """
Hold Take Call Save Leave Find Show Tell Let Bring Kiss Love Wake Break Light Follow Chase
Meet Need Miss Shake Turn Drive Run Dance Fly Sing Touch Feel Keep
""".split()
FIRST_NAMES = """
James Maria Lena Kofi Aiko Mateo Sofia Noah Amara Liam Yuki Chloé José Zoë Björn Ingrid Ravi
Priya Omar Fatima Diego Lucía Hana Jin Mina Leo Nora Elif Can Ana João Marta Felix Clara Hugo
Ivy Kai Luna Milo Nina Oscar Pablo Rosa Sami Tariq Uma Victor Wanda Xavier Yara Zane Ada Bruno
Celine Dario Emeka Freya Gustavo Helga Ines Jamal Keiko Lars Malik Nadia Olga Pedro Quinn
Rahul Sara Tomás Ulla Vera Wei Yusuf Zara
""".split()
LAST_NAMES = """
Park Silva Kim Müller Rossi García Nakamura Okafor Johansson Novak Dubois Smith Nguyen
Kowalski Haddad Costa Fischer Moreau Tanaka Singh Patel Lopez Reyes Adeyemi Berg Larsen
Popescu Horvat Yilmaz Santos Ferreira Ortiz Mendes Castillo Lindqvist Öztürk Nieminen Weber
Vargas Romero Hughes Bianchi Kaplan Sato Ito Chen Wang Li Zhang Khan Ali Cruz Moreno Navarro
Brennan Walsh Murphy Doyle Jensen Olsen Petrov Ivanova Kovač Sousa Barros Lima Mensah Diallo
""".split()

# Name templates and their relative weights. Slots: {a} adjective, {n}/{m} nouns, {v} verb,
# {f} first name, {l} last name, {k} small number, {y} year. A few templates put commas and
# double quotes in the names so that RFC 4180 quoting is exercised, as in the real data
# (e.g. 'Dil Diyan Gallan (From "Tiger Zinda Hai")', "Tyler, The Creator").
_NAME_SLOTS = (
    ("a", ADJECTIVES),
    ("n", NOUNS),
    ("m", NOUNS),
    ("v", VERBS),
    ("f", FIRST_NAMES),
    ("l", LAST_NAMES),
    ("k", range(2, 5)),
    ("y", range(1965, 2024)),
)
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

_COUNTRIES = (
    ("United States", 20),
    ("United Kingdom", 8),
    ("Germany", 7),
    ("Brazil", 7),
    ("India", 6),
    ("Mexico", 5),
    ("France", 5),
    ("Japan", 5),
    ("Canada", 4),
    ("Spain", 4),
    ("Korea, Republic of", 3),
    ("Italy", 3),
    ("Australia", 3),
    ("Netherlands", 2),
    ("Sweden", 2),
    ("Poland", 2),
    ("Turkey", 2),
    ("Argentina", 2),
    ("Colombia", 2),
    ("Indonesia", 2),
    ("Philippines", 2),
    ("Nigeria", 1),
    ("South Africa", 1),
    ("Egypt", 1),
    ("Norway", 1),
    ("Chile", 1),
    ("Ireland", 1),
    ("Côte d'Ivoire", 1),
    ("Viet Nam", 1),
)

# Spawn keys: one independent random stream per purpose.
_KEY_TRACK_IDS = 1
_KEY_TRACK_RANKS = 2
_KEY_SONG_ATTRS = 3
_KEY_ARTISTS = 4
_KEY_USERS = 5
_KEY_USER_ACTIVITY = 6
_KEY_STREAMS = 7
KEY_BAD_SAMPLES = 100  # used by bad_samples.py

# Called with the number of rows just written, so a CLI can advance a progress bar.
Progress = Callable[[int], None]

# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """A PCG64 generator for ``seed``, independent of the generators of every other ``key``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _cdf(weights: np.ndarray) -> np.ndarray:
    """Cumulative distribution of ``weights``; the last entry is exactly 1."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    return cdf


def _draw(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """``n`` indices drawn from the distribution ``cdf`` (inverse-CDF sampling)."""
    idx = np.searchsorted(cdf, rng.random(n), side="right")
    # Float round-off must never yield one past the end.
    return np.minimum(idx, len(cdf) - 1)


def _zipf_weights(ranks: np.ndarray, offset: int) -> np.ndarray:
    """Zipf-like weight 1 / (rank + offset), exponent 1 so that the maths is exact."""
    return 1.0 / (ranks.astype(np.float64) + offset)


def _bell(rng: np.random.Generator, n: int, low: int, high: int, k: int = 3) -> np.ndarray:
    """Integers in [low, high], bell-shaped around the middle (mean of k uniform draws)."""
    return rng.integers(low, high + 1, size=(n, k)).sum(axis=1) // k


def _epoch_seconds(day: date) -> int:
    return calendar.timegm(day.timetuple())


def _names(rng: np.random.Generator, n: int, templates: Sequence[tuple[str, int]]) -> list[str]:
    """``n`` names, each from a template drawn by weight, its slots filled with seeded words."""
    choice = _draw(rng, _cdf(np.array([w for _, w in templates])), n)
    picks = rng.integers(0, 1 << 30, size=(n, len(_NAME_SLOTS)))
    slot_column = {slot: j for j, (slot, _) in enumerate(_NAME_SLOTS)}
    names: list[str] = [""] * n
    # Fill template by template, with one list of words per slot the template uses: far
    # faster than building a dict of all slots for every row.
    for t, (template, _) in enumerate(templates):
        rows = np.flatnonzero(choice == t)
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
        positional = template.format(**{f: f"{{{i}}}" for i, f in enumerate(fields)})
        if not fields:
            for row in rows.tolist():
                names[row] = template
            continue
        words = []
        for f in fields:
            vocab = _NAME_SLOTS[slot_column[f]][1]
            words.append([vocab[r] for r in (picks[rows, slot_column[f]] % len(vocab)).tolist()])
        for row, values in zip(rows.tolist(), zip(*words, strict=True), strict=True):
            names[row] = positional.format(*values)
    return names


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """UTF-8, LF line endings, RFC 4180 minimal quoting (the csv module's default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


# --------------------------------------------------------------------------------------------
# Songs
# --------------------------------------------------------------------------------------------


def _random_base62(rng: np.random.Generator, n: int) -> np.ndarray:
    return _BASE62[rng.integers(0, 62, size=(n, TRACK_ID_LENGTH))]


def random_track_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` fresh random 22-char base62 ids (for ids that must *not* be in the catalogue)."""
    return [bytes(row).decode("ascii") for row in _random_base62(rng, n)]


def track_id_bytes(seed: int, n: int) -> np.ndarray:
    """The catalogue's ``n`` unique track ids as an (n, 22) uint8 array of ASCII bytes."""
    rng = seeded_rng(seed, _KEY_TRACK_IDS)
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


def _track_ranks(seed: int, n: int) -> np.ndarray:
    """Popularity rank of each track (0 = most played): a seeded shuffle of the catalogue."""
    return seeded_rng(seed, _KEY_TRACK_RANKS).permutation(n)


def _artist_pool(seed: int, size: int) -> list[str]:
    """``size`` distinct artist names; list order is popularity order (most popular first)."""
    rng = seeded_rng(seed, _KEY_ARTISTS)
    pool: dict[str, None] = {}  # insertion-ordered set: deterministic, unlike set()
    for _ in range(20):
        for name in _names(rng, 2 * (size - len(pool)), _ARTIST_TEMPLATES):
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
    cdf = _cdf(_zipf_weights(np.arange(len(pool)), ARTIST_ZIPF_OFFSET))
    rng = seeded_rng(seed, _KEY_ARTISTS, 1)
    primary = _draw(rng, cdf, n)
    multi = rng.integers(0, 1000, n) < MULTI_ARTIST_PER_MILLE
    extra_count = np.where(multi, 1 + (rng.integers(0, 5, n) == 0), 0)  # 1, sometimes 2
    extras = _draw(rng, cdf, 2 * n).reshape(n, 2)
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
    rng = seeded_rng(seed, _KEY_SONG_ATTRS)
    ids = track_ids(seed, n)
    ranks = _track_ranks(seed, n)
    artists = _song_artists(seed, n)
    track_names = _names(rng, n, _TRACK_TEMPLATES)
    album_names = _names(rng, n, _ALBUM_TEMPLATES)
    single = rng.integers(0, 1000, n) < _SINGLES_PER_MILLE
    # Every genre gets n // 114 or n // 114 + 1 tracks, so small catalogues cover all 114.
    genres = rng.permutation(np.arange(n) % len(GENRES))

    # Popularity 0..100 follows the play rank (integer maths), with a little noise.
    remaining = (n - ranks).astype(np.int64)
    popularity = np.clip(100 * remaining * remaining // (n * n) + rng.integers(-3, 4, n), 0, 100)
    duration_ms = _bell(rng, n, 90_000, 360_000)
    explicit = rng.integers(0, 1000, n) < 86
    danceability = _bell(rng, n, 100, 980) / 1000
    energy = _bell(rng, n, 150, 1000, k=2) / 1000
    key = rng.integers(0, 12, n)
    loudness = -_bell(rng, n, 1_000, 16_000) / 1000
    mode = (rng.integers(0, 100, n) < 64).astype(np.int64)
    speechiness = np.maximum(rng.integers(0, 10_001, (n, 3)).prod(axis=1) // 10**8, 220) / 10_000
    acousticness = _three_significant(rng.integers(0, 1_000_001, (n, 2)).prod(axis=1), 10**12)
    # Instrumentalness: mostly zero or tiny (Kaggle prints e.g. 1.01e-06), some high.
    kind = rng.integers(0, 100, n)
    mantissa, exponent = rng.integers(100, 1000, n).tolist(), rng.integers(-9, -4, n).tolist()
    tiny = np.array([float(f"{m}e{e}") for m, e in zip(mantissa, exponent, strict=True)])
    high = _bell(rng, n, 300, 990, k=2) / 1000
    instrumentalness = np.where(kind < 30, 0.0, np.where(kind < 75, tiny, high))
    liveness = np.maximum(rng.integers(30, 1001, (n, 2)).prod(axis=1) // 1000, 15) / 1000
    valence = _bell(rng, n, 30, 990, k=2) / 1000
    tempo = _bell(rng, n, 60_000, 190_000) / 1000
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
    _write_csv(path, SONGS_HEADER, _song_rows(seed, n))
    return n


# --------------------------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------------------------


def write_users(
    path: Path,
    n: int = DEFAULT_USERS,
    *,
    seed: int = DEFAULT_SEED,
    start_date: date = DEFAULT_START_DATE,
) -> int:
    """Write users.csv with user_id 1..n; accounts created before ``start_date``."""
    if n < 1:
        raise ValueError("users must be >= 1")
    rng = seeded_rng(seed, _KEY_USERS)
    names = _names(rng, n, (("{f} {l}", 1),))
    # Ages 13..80, skewed young: 13 + product of two uniforms (mean about 30).
    ages = 13 + rng.integers(0, 68, n) * rng.integers(0, 68, n) // 67
    countries = _draw(rng, _cdf(np.array([w for _, w in _COUNTRIES])), n)
    since, until = _epoch_seconds(_USERS_SINCE), _epoch_seconds(start_date)
    created = rng.integers(since, max(since + 1, until), n)
    created_at = [bytes(t).decode() for t in _format_times(created)]
    country_names = [_COUNTRIES[c][0] for c in countries.tolist()]
    rows = list(zip(range(1, n + 1), names, ages.tolist(), country_names, created_at, strict=True))
    _write_csv(path, USERS_HEADER, rows)
    return n


# --------------------------------------------------------------------------------------------
# What streams may reference
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """The ids stream rows may reference, and how likely each is to be drawn."""

    track_ids: np.ndarray  # (n_tracks, width) ASCII bytes, right-padded with 0 bytes
    track_cdf: np.ndarray
    user_ids: np.ndarray  # int64
    user_cdf: np.ndarray

    @classmethod
    def generated(
        cls, seed: int = DEFAULT_SEED, songs: int = DEFAULT_SONGS, users: int = DEFAULT_USERS
    ) -> Catalogue:
        """The ids of songs.csv/users.csv generated with the same seed and sizes (no file I/O)."""
        return cls._build(seed, track_id_bytes(seed, songs), np.arange(1, users + 1))

    @classmethod
    def from_files(cls, songs_path: Path, users_path: Path, seed: int = DEFAULT_SEED) -> Catalogue:
        """The ids found in existing songs/users files; popularity is seeded as for generated.

        For files this module generated with the same seed, the result equals ``generated``.
        """
        ids = read_track_ids(songs_path)
        for tid in ids:
            if not tid.isascii() or any(c in tid for c in ',"\r\n'):
                raise ValueError(f"track_id {tid!r} would need CSV quoting; not supported")
        width = max(len(t) for t in ids)
        encoded = np.array([t.encode("ascii") for t in ids], dtype=f"S{width}")
        track_bytes = encoded.view(np.uint8).reshape(len(ids), width)
        return cls._build(seed, track_bytes, np.array(read_user_ids(users_path), dtype=np.int64))

    @classmethod
    def _build(cls, seed: int, track_bytes: np.ndarray, user_ids: np.ndarray) -> Catalogue:
        n_tracks, n_users = len(track_bytes), len(user_ids)
        if n_tracks == 0 or n_users == 0:
            raise ValueError("streams need at least one track and one user")
        if user_ids.min() < 0:
            raise ValueError("user ids must be non-negative integers")
        track_cdf = _cdf(_zipf_weights(_track_ranks(seed, n_tracks), TRACK_ZIPF_OFFSET))
        user_ranks = seeded_rng(seed, _KEY_USER_ACTIVITY).permutation(n_users)
        user_cdf = _cdf(_zipf_weights(user_ranks, USER_ZIPF_OFFSET))
        return cls(track_bytes, track_cdf, user_ids.astype(np.int64), user_cdf)


def _read_column(path: Path, kind: str, column: str) -> list[str]:
    """Distinct non-empty values of one column, in file order (header matched per contract)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        if missing_columns(kind, header):
            raise ValueError(f"{path}: missing columns {missing_columns(kind, header)}")
        pos = column_positions(kind, header)[column]
        values: dict[str, None] = {}
        for row in reader:
            if len(row) > pos and row[pos]:
                values.setdefault(row[pos])
    return list(values)


def read_track_ids(songs_path: Path) -> list[str]:
    """Distinct track_ids of a songs file, in file order."""
    return _read_column(songs_path, SONGS, "track_id")


def read_user_ids(users_path: Path) -> list[int]:
    """Distinct user_ids of a users file, in file order (they must be integers)."""
    return [int(v) for v in _read_column(users_path, USERS, "user_id")]


# --------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------


@dataclass
class _Events:
    """A chunk of stream events as parallel arrays."""

    user_idx: np.ndarray  # index into Catalogue.user_ids
    track_idx: np.ndarray  # index into Catalogue.track_ids
    epoch_s: np.ndarray  # listen_time, UTC seconds since 1970

    def __len__(self) -> int:
        return len(self.epoch_s)

    def copy_rows(self, dst: np.ndarray, src: _Events, src_rows: np.ndarray) -> None:
        self.user_idx[dst] = src.user_idx[src_rows]
        self.track_idx[dst] = src.track_idx[src_rows]
        self.epoch_s[dst] = src.epoch_s[src_rows]

    def tail(self, n: int) -> _Events:
        return _Events(self.user_idx[-n:], self.track_idx[-n:], self.epoch_s[-n:])


@dataclass(frozen=True)
class _Window:
    """A file's listen_time range [start_s, end_s), whole minutes, and its minute weights."""

    start_s: int
    end_s: int

    def minute_cdf(self) -> np.ndarray:
        minutes = np.arange(self.start_s // 60, self.end_s // 60)
        return _cdf(HOUR_WEIGHTS[(minutes // 60) % 24])


def _file_windows(start_date: date, days: int, files: int) -> list[_Window]:
    """Split [start_date, start_date + days) into ``files`` consecutive windows.

    Every file has the same number of rows, so (as in real life, where a file fills up faster
    when more people listen) each window covers an equal share of the day's listening, not
    an equal share of time: evening files span fewer hours than night files. With 3 files
    over 2 days the middle file spans midnight and each day is spread over two files.
    """
    total_minutes = days * 24 * 60
    if files > total_minutes:
        raise ValueError("more stream files than minutes in the period")
    activity = np.cumsum(HOUR_WEIGHTS[(np.arange(total_minutes) // 60) % 24])
    cuts = [0]
    for k in range(1, files + 1):
        cut = int(np.searchsorted(activity, activity[-1] * k / files)) + 1
        # Every window keeps at least one minute, and leaves one for each later file.
        cuts.append(min(max(cut, cuts[-1] + 1), total_minutes - (files - k)))
    start = _epoch_seconds(start_date)
    return [
        _Window(start + 60 * a, start + 60 * b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]


def _draw_events(
    rng: np.random.Generator, cat: Catalogue, window: _Window, minute_cdf: np.ndarray, n: int
) -> _Events:
    user_idx = _draw(rng, cat.user_cdf, n)
    track_idx = _draw(rng, cat.track_cdf, n)
    minute = _draw(rng, minute_cdf, n)
    epoch_s = window.start_s + 60 * minute + rng.integers(0, 60, n)
    return _Events(user_idx, track_idx, epoch_s)


def _inject_duplicates(
    rng: np.random.Generator, events: _Events, n_dup: int, redeliver: _Events | None
) -> None:
    """Overwrite ``n_dup`` rows with exact copies of other events (same user, track, time).

    Half come from ``redeliver`` (the end of the previous file: a re-sent batch), the rest
    from other rows of this chunk. The row count does not change.
    """
    if n_dup == 0:
        return
    n = len(events)
    targets = rng.choice(n, size=n_dup, replace=False)
    n_cross = n_dup // 2 if redeliver is not None and len(redeliver) else 0
    if n_cross and redeliver is not None:
        events.copy_rows(targets[:n_cross], redeliver, rng.integers(0, len(redeliver), n_cross))
    within = targets[n_cross:]
    originals = np.setdiff1d(np.arange(n), targets, assume_unique=True)
    events.copy_rows(within, events, originals[rng.integers(0, len(originals), len(within))])


def _put_two_digits(out: np.ndarray, col: int, values: np.ndarray) -> None:
    out[:, col] = ord("0") + values // 10
    out[:, col + 1] = ord("0") + values % 10


def _format_times(epoch_s: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DD HH:MM:SS' of each UTC epoch second, as an (n, 19) uint8 array.

    Done with integer maths on arrays: numpy's datetime_as_string is ~10x slower.
    """
    out = np.empty((len(epoch_s), 19), dtype=np.uint8)
    if len(epoch_s) == 0:
        return out
    days = epoch_s // 86_400
    first, last = int(days.min()), int(days.max())
    dates = [date(1970, 1, 1) + timedelta(days=d) for d in range(first, last + 1)]
    date_table = np.frombuffer("".join(f"{d.isoformat()} " for d in dates).encode(), np.uint8)
    out[:, :11] = date_table.reshape(len(dates), 11)[days - first]
    second_of_day = epoch_s - days * 86_400
    _put_two_digits(out, 11, second_of_day // 3600)
    out[:, 13] = ord(":")
    _put_two_digits(out, 14, second_of_day // 60 % 60)
    out[:, 16] = ord(":")
    _put_two_digits(out, 17, second_of_day % 60)
    return out


def _encode_lines(user_ids: np.ndarray, track_bytes: np.ndarray, times: np.ndarray) -> bytes:
    """CSV lines 'user_id,track_id,listen_time\\n'. No field ever needs quoting.

    Each line is laid out in a fixed-width byte matrix; unused cells (leading positions of
    short user ids, padding of short track ids) are 0 bytes and squeezed out at the end.
    """
    n = len(user_ids)
    digits = len(str(int(user_ids.max()))) if n else 1
    width_t = track_bytes.shape[1]
    out = np.zeros((n, digits + 1 + width_t + 1 + 19 + 1), dtype=np.uint8)
    rest = user_ids.copy()
    for col in range(digits - 1, -1, -1):
        shown = (rest > 0) | (col == digits - 1)  # "0" itself still prints one digit
        out[:, col] = np.where(shown, ord("0") + rest % 10, 0)
        rest //= 10
    c = digits
    out[:, c] = ord(",")
    out[:, c + 1 : c + 1 + width_t] = track_bytes
    c += 1 + width_t
    out[:, c] = ord(",")
    out[:, c + 1 : c + 20] = times
    out[:, c + 20] = ord("\n")
    return out[out != 0].tobytes()


def _write_streams_file(
    path: Path,
    n_rows: int,
    *,
    seed: int,
    file_no: int,
    catalogue: Catalogue,
    window: _Window,
    duplicate_rate: float,
    redeliver: _Events | None,
    progress: Progress | None,
) -> tuple[int, _Events | None]:
    """Write one stream file chunk by chunk; returns (duplicates injected, its last events)."""
    if n_rows < 0:
        raise ValueError("rows must be >= 0")
    if not 0.0 <= duplicate_rate <= 0.5:
        raise ValueError("duplicate_rate must be within [0, 0.5]")
    minute_cdf = window.minute_cdf()
    path.parent.mkdir(parents=True, exist_ok=True)
    duplicates, last = 0, None
    with open(path, "wb") as f:
        f.write((",".join(STREAMS_HEADER) + "\n").encode())
        for chunk_no, lo in enumerate(range(0, n_rows, CHUNK_ROWS)):
            hi = min(lo + CHUNK_ROWS, n_rows)
            # One random stream per chunk: a chunk's content depends only on its position.
            rng = seeded_rng(seed, _KEY_STREAMS, file_no, chunk_no)
            events = _draw_events(rng, catalogue, window, minute_cdf, hi - lo)
            n_dup = round(duplicate_rate * hi) - round(duplicate_rate * lo)
            _inject_duplicates(rng, events, n_dup, redeliver if chunk_no == 0 else None)
            f.write(
                _encode_lines(
                    catalogue.user_ids[events.user_idx],
                    catalogue.track_ids[events.track_idx],
                    _format_times(events.epoch_s),
                )
            )
            duplicates += n_dup
            last = events
            if progress is not None:
                progress(hi - lo)
    return duplicates, (last.tail(_REDELIVERY_TAIL) if last is not None else None)


@dataclass(frozen=True)
class StreamsFile:
    path: Path
    rows: int
    duplicates_injected: int


def write_streams(
    path: Path,
    n_rows: int,
    *,
    seed: int = DEFAULT_SEED,
    songs: int = DEFAULT_SONGS,
    users: int = DEFAULT_USERS,
    catalogue: Catalogue | None = None,
    start_date: date = DEFAULT_START_DATE,
    days: int = 1,
    duplicate_rate: float = 0.0,
    progress: Progress | None = None,
) -> StreamsFile:
    """Write one (possibly huge) streams file, e.g. for benchmarks, in bounded memory.

    Rows reference the catalogue of ``generate_dataset(seed=seed, songs=songs, users=users)``
    unless ``catalogue`` is given (e.g. ``Catalogue.from_files(songs_csv, users_csv)``).
    listen_time spans ``days`` days from ``start_date``; ``duplicate_rate`` of the rows are
    exact copies of other rows of the file.
    """
    cat = catalogue if catalogue is not None else Catalogue.generated(seed, songs, users)
    window = _file_windows(start_date, days, 1)[0]
    duplicates, _ = _write_streams_file(
        path,
        n_rows,
        seed=seed,
        file_no=1,
        catalogue=cat,
        window=window,
        duplicate_rate=duplicate_rate,
        redeliver=None,
        progress=progress,
    )
    return StreamsFile(path, n_rows, duplicates)


# --------------------------------------------------------------------------------------------
# Whole data sets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedDataset:
    """What ``generate_dataset`` / ``write_sample_set`` wrote."""

    out_dir: Path
    seed: int
    songs_path: Path
    songs_rows: int
    users_path: Path
    users_rows: int
    stream_paths: tuple[Path, ...]
    stream_rows: tuple[int, ...]
    duplicates_injected: tuple[int, ...]  # per stream file, within-file and re-delivered
    extra_paths: tuple[Path, ...] = ()  # the sample set's bad/ and edge/ files

    @property
    def total_stream_rows(self) -> int:
        return sum(self.stream_rows)

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.songs_path, self.users_path, *self.stream_paths, *self.extra_paths)


def generate_dataset(
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    songs: int = DEFAULT_SONGS,
    users: int = DEFAULT_USERS,
    stream_files: int = DEFAULT_STREAM_FILES,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    start_date: date = DEFAULT_START_DATE,
    days: int = 1,
    duplicate_rate: float = 0.0,
    progress: Progress | None = None,
) -> GeneratedDataset:
    """Write ``out_dir``/songs.csv, users.csv and streams/streams1.csv .. streamsN.csv.

    The stream files cover consecutive time windows of [start_date, start_date + days).
    With ``duplicate_rate`` > 0, that share of each file's rows are exact duplicate events:
    half copied from elsewhere in the same file, and (from the second file on) half re-sent
    from the end of the previous file. ``progress`` is called with rows written, for a total
    of songs + users + stream_files * rows_per_file.
    """
    if stream_files < 1 or days < 1:
        raise ValueError("stream_files and days must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    songs_path, users_path = out_dir / "songs.csv", out_dir / "users.csv"
    write_songs(songs_path, songs, seed=seed)
    if progress is not None:
        progress(songs)
    write_users(users_path, users, seed=seed, start_date=start_date)
    if progress is not None:
        progress(users)

    catalogue = Catalogue.generated(seed, songs, users)
    paths, duplicates, redeliver = [], [], None
    for file_no, window in enumerate(_file_windows(start_date, days, stream_files), start=1):
        path = out_dir / "streams" / f"streams{file_no}.csv"
        n_dup, redeliver = _write_streams_file(
            path,
            rows_per_file,
            seed=seed,
            file_no=file_no,
            catalogue=catalogue,
            window=window,
            duplicate_rate=duplicate_rate,
            redeliver=redeliver,
            progress=progress,
        )
        paths.append(path)
        duplicates.append(n_dup)
    return GeneratedDataset(
        out_dir=out_dir,
        seed=seed,
        songs_path=songs_path,
        songs_rows=songs,
        users_path=users_path,
        users_rows=users,
        stream_paths=tuple(paths),
        stream_rows=(rows_per_file,) * stream_files,
        duplicates_injected=tuple(duplicates),
    )


# --------------------------------------------------------------------------------------------
# The committed sample set (data_samples/)
# --------------------------------------------------------------------------------------------

SAMPLE_SEED = 42
SAMPLE_SONGS = 2_000
SAMPLE_USERS = 500
SAMPLE_STREAM_FILES = 3
SAMPLE_ROWS_PER_FILE = 1_500
SAMPLE_DAYS = 2
SAMPLE_DUPLICATE_RATE = 0.01


def write_sample_set(out_dir: Path) -> GeneratedDataset:
    """Write exactly the committed data_samples/ set (data files only, not the READMEs)."""
    # Imported here: bad_samples builds on this module.
    from musicpipe.data.bad_samples import write_bad_samples, write_edge_samples

    out_dir = Path(out_dir)
    dataset = generate_dataset(
        out_dir,
        seed=SAMPLE_SEED,
        songs=SAMPLE_SONGS,
        users=SAMPLE_USERS,
        stream_files=SAMPLE_STREAM_FILES,
        rows_per_file=SAMPLE_ROWS_PER_FILE,
        days=SAMPLE_DAYS,
        duplicate_rate=SAMPLE_DUPLICATE_RATE,
    )
    bad = write_bad_samples(out_dir / "bad", dataset.songs_path, dataset.users_path, SAMPLE_SEED)
    edge = write_edge_samples(out_dir / "edge", dataset.songs_path, dataset.users_path, SAMPLE_SEED)
    return dataclasses.replace(dataset, extra_paths=(*bad, *edge))
