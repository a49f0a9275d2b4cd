"""Sorting the data gates' numbers: numpy's sort, except where its AVX-512 kernel is slow.

numpy sorts 64-bit numbers with x86-simd-sort, and on a CPU with AVX-512 it takes the AVX-512
kernel: the fastest there is on Intel (1,000,000 hashes in about 6 ms). On AMD's Zen 4 (family
0x19, the first AMD family with AVX-512), that kernel's compress-store to memory is microcoded,
and the same sort takes 55 ms, five times as long as numpy's AVX2 kernel on the same CPU (11 ms;
measured 2026-12-07; numpy/x86-simd-sort#6, and OpenJDK turned its AVX-512 sort off on this
family for the same reason, JDK-8317976). numpy picks its kernel once, when it is imported
(NPY_DISABLE_CPU_FEATURES), so a library cannot choose for it; on such a CPU an array of
`POLARS_FROM` values or more is sorted by polars' multi-threaded sort instead (1,000,000 hashes
in 14 ms; 10,000 numbers in 0.12 ms against numpy's 0.26 ms; below that numpy's call costs
less). Either sort gives the same array: NaN last, as numpy and polars both order it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

POLARS_FROM = 10_000
ZEN_4_FAMILY = 0x19  # AMD's Zen 3 and Zen 4; of the two only Zen 4 has AVX-512


@functools.cache
def numpy_sort_is_slow(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether numpy's sort would take its AVX-512 kernel on a Zen 4 CPU (read from
    /proc/cpuinfo; elsewhere, or when it cannot be read, numpy's sort is taken as fine)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block describes them all
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return (
        fields.get("vendor_id") == "AuthenticAMD"
        and fields.get("cpu family", "").isdigit()
        and int(fields["cpu family"]) == ZEN_4_FAMILY
        and "avx512f" in fields.get("flags", "").split()
    )


def sorted_copy(values: np.ndarray) -> np.ndarray:
    """`values` (a 1-d array of numbers) sorted ascending, NaN last, in a new array."""
    if len(values) < POLARS_FROM or not numpy_sort_is_slow():
        return np.sort(values)
    import polars as pl

    return pl.Series(values).sort().to_numpy()
