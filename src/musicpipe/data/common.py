"""What every part of a generated data set shares: sizes, random streams, name words and
the random, time and CSV helpers (docs/data.md).

Determinism: every random draw comes from ``numpy.random.Generator(PCG64(...))``, with the
stream keyed by ``(seed, purpose, ...)`` through a ``SeedSequence`` spawn key. Each part of a
data set therefore has its own independent stream: changing the number of stream files does
not change the songs, and a benchmark-sized streams file can be generated without reading
songs.csv back (the track ids are re-derived from the seed).

Portability: only integer draws (``integers``, ``random``, ``permutation``, ``choice``) and
exact arithmetic (integer maths, one division, sequential sums) shape the output. No
``log``/``exp``-based distributions are used, because their results can differ in the last bit
between CPUs and libm builds, and the committed sample set must be byte-identical everywhere.
"""

from __future__ import annotations

import calendar
import csv
import string
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np

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

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Spawn keys: one independent random stream per purpose.
KEY_TRACK_IDS = 1
KEY_TRACK_RANKS = 2
KEY_SONG_ATTRS = 3
KEY_ARTISTS = 4
KEY_USERS = 5
KEY_USER_ACTIVITY = 6
KEY_STREAMS = 7
KEY_BAD_SAMPLES = 100  # used by bad_samples.py

# Called with the number of rows just written, so a CLI can advance a progress bar.
Progress = Callable[[int], None]

# --------------------------------------------------------------------------------------------
# Words names are made of
# --------------------------------------------------------------------------------------------

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

# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """A PCG64 generator for ``seed``, independent of the generators of every other ``key``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def weights_cdf(weights: np.ndarray) -> np.ndarray:
    """Cumulative distribution of ``weights``; the last entry is exactly 1."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    return cdf


def draw_indices(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """``n`` indices drawn from the distribution ``cdf`` (inverse-CDF sampling)."""
    idx = np.searchsorted(cdf, rng.random(n), side="right")
    # Float round-off must never yield one past the end.
    return np.minimum(idx, len(cdf) - 1)


def zipf_weights(ranks: np.ndarray, offset: int) -> np.ndarray:
    """Zipf-like weight 1 / (rank + offset), exponent 1 so that the maths is exact."""
    return 1.0 / (ranks.astype(np.float64) + offset)


def bell_integers(rng: np.random.Generator, n: int, low: int, high: int, k: int = 3) -> np.ndarray:
    """Integers in [low, high], bell-shaped around the middle (mean of k uniform draws)."""
    return rng.integers(low, high + 1, size=(n, k)).sum(axis=1) // k


def epoch_seconds(day: date) -> int:
    return calendar.timegm(day.timetuple())


def template_names(
    rng: np.random.Generator, n: int, templates: Sequence[tuple[str, int]]
) -> list[str]:
    """``n`` names, each from a template drawn by weight, its slots filled with seeded words."""
    choice = draw_indices(rng, weights_cdf(np.array([w for _, w in templates])), n)
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


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """UTF-8, LF line endings, RFC 4180 minimal quoting (the csv module's default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _put_two_digits(out: np.ndarray, col: int, values: np.ndarray) -> None:
    out[:, col] = ord("0") + values // 10
    out[:, col + 1] = ord("0") + values % 10


def format_times(epoch_s: np.ndarray) -> np.ndarray:
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
