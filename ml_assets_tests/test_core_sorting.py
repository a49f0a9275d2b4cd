"""Pure core: the data gates' sort (data/sorting) gives numpy's order whichever sort runs."""

import numpy as np
import pytest

from ml_assets.data import sorting
from ml_assets.data.redelivery import repeated

ZEN_4 = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"


@pytest.mark.parametrize(
    ("block", "slow"),
    [
        (ZEN_4, True),
        # Zen 3: the same family, no AVX-512, so numpy takes its AVX2 kernel.
        (ZEN_4.replace(" avx512f avx512bw", ""), False),
        (ZEN_4.replace(": 25", ": 26"), False),  # Zen 5 stores compressed vectors at speed
        (ZEN_4.replace("AuthenticAMD", "GenuineIntel").replace(": 25", ": 6"), False),
    ],
)
def test_only_zen_4_with_avx512_is_steered_away_from_numpys_sort(tmp_path, block, slow):
    cpuinfo = tmp_path / "cpuinfo"
    # The first processor's block decides; a later block is not read.
    cpuinfo.write_text(block + "\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
    assert sorting.numpy_sort_is_slow(str(cpuinfo)) is slow


def test_an_unreadable_cpuinfo_leaves_numpys_sort(tmp_path):
    assert sorting.numpy_sort_is_slow(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("slow", [True, False])
def test_both_sorts_give_numpys_order_nan_last(monkeypatch, slow):
    monkeypatch.setattr(sorting, "numpy_sort_is_slow", lambda: slow)
    rng = np.random.default_rng(3)
    numbers = rng.normal(size=sorting.POLARS_FROM + 7).round(2)  # ties
    numbers[::97] = np.nan
    numbers[5], numbers[6] = -0.0, 0.0
    before = numbers.copy()
    ordered = sorting.sorted_copy(numbers)
    expected = np.sort(numbers)
    assert np.array_equal(ordered, expected, equal_nan=True)
    assert np.isnan(ordered[-len(numbers[::97]) :]).all()
    hashes = rng.integers(-(2**63), 2**63 - 1, size=sorting.POLARS_FROM, dtype=np.int64)
    assert np.array_equal(sorting.sorted_copy(hashes), np.sort(hashes))
    assert np.array_equal(numbers, before, equal_nan=True)  # a sorted copy; the input is left


@pytest.mark.parametrize("slow", [True, False])
def test_a_repeated_hash_is_found_by_either_sort(monkeypatch, slow):
    monkeypatch.setattr(sorting, "numpy_sort_is_slow", lambda: slow)
    hashes = np.arange(sorting.POLARS_FROM * 2, dtype=np.uint64) * np.uint64(2**40 + 3)
    assert repeated(hashes) is None
    hashes[-1] = hashes[17]
    twice = repeated(hashes)
    assert twice is not None
    assert np.flatnonzero(twice).tolist() == [17, len(hashes) - 1]
