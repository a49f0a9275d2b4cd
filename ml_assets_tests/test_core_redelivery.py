"""The re-delivery rule (data/redelivery): containment from sketches, and chance at coarseness."""

import numpy as np
import polars as pl
import pytest

from ml_assets.data.redelivery import (
    SKETCH_SIZE,
    _common,
    containment,
    judge_redelivery,
    sketches,
)


def _sketches(frames):
    days = tuple(f"2026-01-{i + 1:02d}" for i in range(len(frames)))
    stacked = pl.concat([f.with_columns(pl.lit(i).alias("day")) for i, f in enumerate(frames)])
    return days, sketches(stacked, "day", [c for c in frames[0].columns], days)


def _fine(n, seed):
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"x": rng.normal(size=n), "k": rng.integers(0, 4, n)})


def _coarse(n, seed):
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "a": rng.integers(0, 3, n),
            "b": rng.integers(0, 4, n),
            "c": rng.integers(0, 5, n),
            "d": rng.integers(0, 2, n),
        }
    )


def test_containment_is_exact_below_the_sketch_size():
    """Multisets of 200 and 100 rows (under k): 60 of the small one's rows are rows of the big."""
    big = _fine(200, 0)
    small = pl.concat([big.head(60), _fine(40, 1)])
    _, found = _sketches([big, small])
    b, s = found["2026-01-01"], found["2026-01-02"]
    assert len(b.hashes) == 200 < SKETCH_SIZE
    assert containment(s, b) == pytest.approx(0.6)
    assert containment(b, s) == pytest.approx(0.3)


def test_repeated_rows_count_as_often_as_they_occur():
    """Rows are a multiset: two copies of a row are contained only where it occurs twice."""
    once = pl.DataFrame({"a": [1, 2, 3, 4]})
    twice = pl.DataFrame({"a": [1, 1, 2, 3]})
    _, found = _sketches([once, twice])
    assert containment(found["2026-01-02"], found["2026-01-01"]) == pytest.approx(0.75)


def test_containment_estimate_on_large_batches():
    base = _fine(20_000, 0)
    half = pl.concat([base.head(10_000), _fine(10_000, 1)])
    _, found = _sketches([base, half])
    assert containment(found["2026-01-02"], found["2026-01-01"]) == pytest.approx(0.5, abs=0.08)


def test_a_shuffled_copy_is_redelivered_and_names_its_source():
    frames = [_fine(3000, s) for s in range(4)]
    frames.append(frames[1].sample(fraction=1.0, shuffle=True, seed=3))
    days, found = _sketches(frames)
    verdict = judge_redelivery(found[days[-1]], list(found.values()), 0.9)
    assert verdict.redelivered and verdict.sources == (days[1],)
    assert verdict.share == pytest.approx(1.0)
    assert all(
        not judge_redelivery(found[d], list(found.values()), 0.9).redelivered for d in days[:-1]
    )


def test_coarse_batches_sharing_most_rows_by_chance_pass_and_a_copy_still_fails():
    """120 possible rows: independent batches share about 88% of their rows by chance."""
    frames = [_coarse(3000, s) for s in range(5)]
    days, found = _sketches(frames)
    for day in days:
        verdict = judge_redelivery(found[day], list(found.values()), 0.9)
        assert not verdict.redelivered, verdict.reason
    assert judge_redelivery(found[days[-1]], list(found.values()), 0.9).share > 0.8
    frames.append(frames[2].sample(fraction=1.0, shuffle=True, seed=1))
    days, found = _sketches(frames)
    copy = judge_redelivery(found[days[-1]], list(found.values()), 0.9)
    assert copy.redelivered and copy.sources == (days[2],), copy.reason


def test_when_chance_alone_reaches_the_share_nothing_is_flagged():
    """Two possible rows: every batch is 'contained' in every other; nothing can be told."""
    frames = [pl.DataFrame({"a": np.random.default_rng(s).integers(0, 2, 3000)}) for s in range(5)]
    frames.append(frames[0])
    days, found = _sketches(frames)
    verdict = judge_redelivery(found[days[-1]], list(found.values()), 0.9)
    assert not verdict.redelivered and "cannot be told" in verdict.reason


def test_the_first_batch_has_nothing_to_repeat():
    days, found = _sketches([_fine(100, 0)])
    verdict = judge_redelivery(found[days[0]], list(found.values()), 0.9)
    assert not verdict.redelivered and verdict.reason == "no earlier batch"


def test_kept_sketches_load_in_both_layouts(tmp_path):
    """A sketch is kept as hex bytes and loads back to the same hashes; a sketch kept in the
    earlier layout (a list of numbers) still loads, so no kept history is lost."""
    import json

    from ml_assets.data.ledger import load_sketches, save_sketches

    _, found = _sketches([_fine(700, 0), _fine(40, 1)])
    save_sketches(tmp_path, found)
    older = found["2026-01-02"].as_json()
    hashes = [int(h) for h in found["2026-01-02"].hashes]
    older.pop("hashes_hex")
    (tmp_path / "2026-01-02.json").write_text(json.dumps({**older, "hashes": hashes}))
    loaded = load_sketches(tmp_path, ["2026-01-01", "2026-01-02", "2026-01-03"])
    assert [s.day for s in loaded] == ["2026-01-01", "2026-01-02"]  # none kept for the third
    for sketch in loaded:
        kept = found[sketch.day]
        assert sketch.hashes.dtype == np.uint64 and sketch.hashes.tolist() == kept.hashes.tolist()
        assert (sketch.rows, sketch.half_share, sketch.hasher) == (
            kept.rows,
            kept.half_share,
            kept.hasher,
        )
    assert max(found["2026-01-01"].hashes) > 2**63  # the full 64 bits survive the round trip


def test_the_shared_hashes_of_two_sketches_are_counted_as_intersect1d_counts_them():
    rng = np.random.default_rng(11)
    pool = np.unique(rng.integers(0, 2**63, size=3000, dtype=np.int64).view(np.uint64))
    for _ in range(50):
        a = np.sort(rng.choice(pool, size=int(rng.integers(0, 600)), replace=False))
        b = np.sort(rng.choice(pool, size=int(rng.integers(0, 600)), replace=False))
        assert _common(a, b) == len(np.intersect1d(a, b, assume_unique=True))
    low, high = pool[:10], pool[-10:]
    assert _common(high, low) == 0  # every value beyond the other's largest
    assert _common(low, high) == 0
    assert _common(pool[:0], pool) == 0
    assert _common(pool, pool) == len(pool)
