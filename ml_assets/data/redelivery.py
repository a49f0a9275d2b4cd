"""Re-delivered batches: an earlier batch's rows sent again, under new ids or a new date.

Each batch is summarised by a bottom-k sketch of the multiset of its feature rows (id,
timestamp and label left out: a re-delivery carries new ids and may be re-stamped). Two
sketches estimate the share of one batch's rows that are rows of the other (containment), in
O(k) whatever the batches' sizes, so a new batch is compared with every earlier one without
reading their files again.

Data with few, coarse features repeats rows legitimately, across batches too. What a batch
shares with batches it was not copied from is measured on its own containments in the earlier
batches (their median, and a robust spread no smaller than the sketch's sampling error) or,
with fewer than three earlier batches, on the batch alone (the containment between two random
halves of it, which understates chance, so its shortfall from 1 is halved). An earlier batch
is the source of a re-delivery only when the containment in it reaches the policy's share,
lies more than halfway from that chance level to 1 and more than six spreads above it. When
no share could pass that bar, a re-delivery cannot be told from chance and nothing is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ml_assets.data.sorting import sorted_copy

if TYPE_CHECKING:
    import polars as pl

SKETCH_SIZE = 512  # the estimate's standard error is at most 0.5 / sqrt(512), about 0.02
OUTLIER_SPREADS = 6  # how far above chance a source's containment must lie, in spreads


@dataclass(frozen=True)
class Sketch:
    """One batch's rows in brief: the `SKETCH_SIZE` smallest hashes of its (row, occurrence)
    pairs, how many rows it holds, and the containment between two random halves of it."""

    day: str
    rows: int
    half_share: float
    hashes: np.ndarray  # sorted uint64
    hasher: str  # sketches compare only when hashed by the same library version

    def as_json(self) -> dict:
        """The sketch as kept on disk: its hashes as one hex string of their little-endian
        bytes (parsed in a tenth of the time of a list of 512 numbers: a year of kept
        sketches loads in 9 ms rather than 24)."""
        return {
            "day": self.day,
            "rows": self.rows,
            "half_share": self.half_share,
            "hasher": self.hasher,
            "hashes_hex": self.hashes.astype("<u8").tobytes().hex(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Sketch:
        """A kept sketch, in either layout: hex bytes, or the list of numbers kept before."""
        if "hashes_hex" in data:
            hashes = np.frombuffer(bytes.fromhex(data["hashes_hex"]), dtype="<u8")
        else:
            hashes = np.array(data["hashes"], dtype=np.uint64)
        return cls(
            day=data["day"],
            rows=int(data["rows"]),
            half_share=float(data["half_share"]),
            hashes=hashes.astype(np.uint64),
            hasher=data["hasher"],
        )


def repeated(hashes: np.ndarray) -> np.ndarray | None:
    """Mask of the `hashes` (64-bit, none missing) that occur more than once, None when none does.

    What polars' is_duplicated gives, by one sort: 6 ms against 45 ms for 1,000,000 hashes (a
    hash table that size misses the cache at nearly every lookup; a sort streams through it).
    The bits are sorted as signed integers, which tells the same values apart: on a machine
    without AVX-512, numpy sorts those faster (1,000,000 hashes: 20 ms against 22 to 30 ms).
    The sort is data/sorting's, which steps around numpy's slow kernel on AMD's Zen 4.
    """
    ordered = sorted_copy(hashes.view(np.int64)).view(np.uint64)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return None
    return np.isin(hashes, ordered[1:][same])


def all_distinct(hashes: np.ndarray) -> bool:
    """Every one of the `hashes` (64-bit, none missing) occurs once (see `repeated`)."""
    return repeated(hashes) is None


def hasher() -> str:
    import polars as pl

    # The row hash is polars' DataFrame.hash_rows, stable within one polars version only.
    return f"polars {pl.__version__} hash_rows"


def sketches(
    frame: pl.DataFrame, day_column: str, columns: list[str], days: tuple[str, ...]
) -> dict[str, Sketch]:
    """A sketch per day of `frame` (rows of day k carry `day_column` == k), over `columns`.

    A missing number hashes as one value whether it is NaN or null.
    """
    import polars as pl

    values = [
        pl.col(c).fill_nan(None) if frame.schema[c].is_float() else pl.col(c)
        for c in columns
        if c in frame.columns
    ]
    # hash_rows, not a struct's hash: the same row hash at an eighth of the cost (measured:
    # 21 ms against 170 ms for 1,000,000 rows of 15 columns).
    rows = pl.DataFrame(
        {day_column: frame[day_column], "row": frame.select(values).hash_rows(seed=0)}
    )
    # A seeded coin per row: the two halves the batch's own chance level is measured on.
    rows = rows.with_columns((pl.int_range(pl.len()).hash(seed=2) % 2).alias("half"))
    # Most rows occur once in their batch: only repeated rows need an occurrence number (a
    # window over a million groups costs seconds; over the repeats, next to nothing). A row
    # hash seen twice anywhere in the run is enough to be numbered: a row repeated only across
    # batches gets k = 0 in its own, hence the same item, and shares nothing between halves.
    twice = repeated(rows["row"].to_numpy())
    rows = rows.with_columns(
        pl.Series("repeated", twice) if twice is not None else pl.lit(False).alias("repeated")
    )
    # A row's first occurrence is its row hash; its k-th repeat, the hash of (row, k).
    single = rows.filter(~pl.col("repeated")).with_columns(pl.col("row").alias("item"))
    repeats = rows.filter(pl.col("repeated")).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over(day_column, "row").alias("k")
    )
    items = pl.concat(
        [
            single.lazy(),
            repeats.lazy()
            .with_columns(
                pl.when(pl.col("k") == 0)
                .then(pl.col("row"))
                .otherwise(pl.struct("row", "k").hash(seed=1))
                .alias("item")
            )
            .drop("k"),
        ]
    )
    table = items.group_by(day_column).agg(
        pl.len().alias("rows"),
        (pl.col("half") == 0).sum().alias("first_half"),
        pl.col("item").bottom_k(SKETCH_SIZE).sort().alias("hashes"),
    )
    # Containment between the halves: only a row repeated within its batch can be in both.
    halves = (
        repeats.lazy()
        .group_by(day_column, "row")
        .agg((pl.col("half") == 0).sum().alias("a"), (pl.col("half") == 1).sum().alias("b"))
        .group_by(day_column)
        .agg(pl.min_horizontal("a", "b").sum().alias("shared"))
    )
    table, halves = pl.collect_all([table, halves])
    table = table.join(halves, on=day_column, how="left").with_columns(
        (pl.col("shared").fill_null(0) / pl.max_horizontal("first_half", 1)).alias("half_share")
    )
    name = hasher()
    return {
        days[k]: Sketch(days[k], int(n), float(r or 0.0), np.array(h, dtype=np.uint64), name)
        for k, n, r, h in table.select(day_column, "rows", "half_share", "hashes").iter_rows()
    }


def _common(a: np.ndarray, b: np.ndarray) -> int:
    """How many values two sorted arrays of distinct values share: each of `a` looked up in `b`
    (a run compares about 1,200 pairs of sketches: 7 us a pair, against 16 us for
    np.intersect1d, which sorts the two sketches again)."""
    if not len(a) or not len(b):
        return 0
    at = np.searchsorted(b, a)
    at[at == len(b)] = 0  # beyond b's largest: compared with b[0], which is smaller
    return int(np.count_nonzero(b[at] == a))


def containment(batch: Sketch, earlier: Sketch) -> float:
    """Estimated share of `batch`'s rows that are rows of `earlier` (as multisets).

    From the Jaccard similarity J of the two sketches: among the hashes up to the smaller of
    the two sketches' largest (below it both sketches hold every hash of their batch), the
    share found in both; exact when both batches hold fewer than k rows. Then
    |A and B| = J (|A| + |B|) / (1 + J).
    """
    if batch.rows == 0 or earlier.rows == 0:
        return 0.0
    a, b = batch.hashes, earlier.hashes
    full = [h[-1] for h in (a, b) if len(h) >= SKETCH_SIZE]
    if full:
        top = min(full)
        a, b = (
            a[: np.searchsorted(a, top, side="right")],
            b[: np.searchsorted(b, top, side="right")],
        )
    both = _common(a, b)
    union = len(a) + len(b) - both
    jaccard = both / union if union else 0.0
    shared = jaccard * (batch.rows + earlier.rows) / (1 + jaccard)
    return float(min(1.0, shared / batch.rows))


@dataclass(frozen=True)
class Redelivery:
    """The verdict on one batch: re-delivered or not, from which earlier batch(es)."""

    day: str
    redelivered: bool
    share: float  # the largest containment in an earlier batch
    threshold: float  # the share above which this batch counts as re-delivered
    chance: float  # how often rows coincide by chance at this data's coarseness
    sources: tuple[str, ...]  # the earlier batches it repeats, most similar first
    reason: str
    source_shares: tuple[float, ...] = ()  # the containment in each of `sources`


def judge_redelivery(batch: Sketch, earlier: list[Sketch], min_share: float) -> Redelivery:
    """Whether `batch` repeats one of the `earlier` batches beyond chance (see the module)."""
    comparable = [e for e in earlier if e.hasher == batch.hasher and e.day < batch.day]
    if not comparable:
        return Redelivery(batch.day, False, 0.0, min_share, 0.0, (), "no earlier batch")
    shares = np.array([containment(batch, e) for e in comparable])
    if len(comparable) >= 3:
        chance = float(np.median(shares))
        spread = max(
            1.4826 * float(np.median(np.abs(shares - chance))),
            float(np.sqrt(chance * (1 - chance) / SKETCH_SIZE)),
        )
        threshold = max(min_share, chance + (1 - chance) / 2, chance + OUTLIER_SPREADS * spread)
    else:
        chance = 1 - (1 - batch.half_share) / 2
        threshold = max(min_share, chance + (1 - chance) / 2)
    order = np.lexsort(([e.day for e in comparable], -shares))
    best = float(shares[order[0]])
    if threshold > 1:
        reason = (
            f"this batch shares {chance:.0%} of its rows with earlier batches by chance: a "
            "re-delivery cannot be told from chance"
        )
        return Redelivery(batch.day, False, best, threshold, chance, (), reason)
    found = [k for k in order if shares[k] >= threshold]
    sources = tuple(comparable[k].day for k in found)
    if sources:
        reason = (
            f"{best:.0%} of the batch's rows are rows of the batch of {sources[0]}"
            + (f" (and {len(sources) - 1} more)" if len(sources) > 1 else "")
            + f": re-delivered (threshold {threshold:.0%}; {chance:.0%} shared by chance)"
        )
        return Redelivery(
            batch.day,
            True,
            best,
            threshold,
            chance,
            sources,
            reason,
            tuple(float(shares[k]) for k in found),
        )
    closest = comparable[order[0]].day
    reason = f"at most {best:.1%} of the batch's rows are rows of an earlier batch ({closest})"
    return Redelivery(batch.day, False, best, threshold, chance, (), reason)
