"""users.csv: user_id 1..n with names, ages, countries and sign-up times."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from musicpipe.data.common import (
    DEFAULT_SEED,
    DEFAULT_START_DATE,
    DEFAULT_USERS,
    KEY_USERS,
    draw_indices,
    epoch_seconds,
    format_times,
    seeded_rng,
    template_names,
    weights_cdf,
    write_csv,
)

USERS_HEADER = ("user_id", "user_name", "user_age", "user_country", "created_at")
# Users signed up between this date and the first streamed day.
_USERS_SINCE = date(2019, 1, 1)

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
    rng = seeded_rng(seed, KEY_USERS)
    names = template_names(rng, n, (("{f} {l}", 1),))
    # Ages 13..80, skewed young: 13 + product of two uniforms (mean about 30).
    ages = 13 + rng.integers(0, 68, n) * rng.integers(0, 68, n) // 67
    countries = draw_indices(rng, weights_cdf(np.array([w for _, w in _COUNTRIES])), n)
    since, until = epoch_seconds(_USERS_SINCE), epoch_seconds(start_date)
    created = rng.integers(since, max(since + 1, until), n)
    created_at = [bytes(t).decode() for t in format_times(created)]
    country_names = [_COUNTRIES[c][0] for c in countries.tolist()]
    rows = list(zip(range(1, n + 1), names, ages.tolist(), country_names, created_at, strict=True))
    write_csv(path, USERS_HEADER, rows)
    return n
