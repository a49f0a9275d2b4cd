"""Which polars engine runs a gate's queries: the in-memory one on small data.

polars' default engine (`auto`) streams. On the 1,000,000-row window it judges the seven data
gates about 20% faster than the in-memory engine (schema gate 0.71 s against 0.93 s, profile
gate 0.17 s against 0.33 s, 2026-12-07). But a run of a few batches is some 60 small queries
(pandera's checks, the category counts), and each pays about 0.2 ms more to start the
streaming engine than the in-memory one (0.34 ms against 0.13 ms for a null count of 5,000
rows): below 100,000 rows the in-memory engine judges a run 15 to 30% faster (one 5,000-row
batch through the seven gates: 0.22 s against 0.16 s; five of 20,000 rows: 0.33 s against
0.27 s), at 200,000 the two are even. Both give the same numbers: the lazy queries the gates
run count rows and sum zeros and ones (exact in either engine); the means and spreads are
computed eagerly, which is in memory either way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

IN_MEMORY_BELOW_ROWS = 100_000
# polars keeps its engine choice in this variable (pl.Config.set_engine_affinity writes it).
AFFINITY = "POLARS_ENGINE_AFFINITY"


@contextlib.contextmanager
def engine_for(rows: int) -> Iterator[None]:
    """polars' in-memory engine inside the block when the data holds fewer than
    `IN_MEMORY_BELOW_ROWS` rows; the default otherwise, or whatever engine the user chose
    (POLARS_ENGINE_AFFINITY set in the environment wins).

    The choice is polars' process-wide setting, restored on leaving the block: the gates of a
    run execute one after another, and a thread a gate starts (the leakage gate's category
    counts) runs inside its block.
    """
    if rows >= IN_MEMORY_BELOW_ROWS or AFFINITY in os.environ:
        yield
        return
    import polars as pl

    pl.Config.set_engine_affinity("in-memory")
    try:
        yield
    finally:
        pl.Config.set_engine_affinity(None)  # back to the default: the variable was unset
