"""Lineage of a run: the git commit of the project when there is one, and the tags that say
what a model was trained on."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(root: Path) -> str:
    """`<sha>` or `<sha>-dirty` of the checkout at `root`; "unknown" outside a git checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def flagged_batches_tag(warned: dict[str, list[str]], limit: int = 4000) -> str:
    """`day (gate, gate)` per flagged batch, within MLflow's tag length; a cut says so."""
    parts = [
        f"{day} ({', '.join(sorted({reason.split(':')[0] for reason in reasons}))})"
        for day, reasons in sorted(warned.items())
    ]
    text = "; ".join(parts) or "none"
    if len(text) <= limit:
        return text
    kept = text[:limit].rsplit("; ", 1)[0]
    return f"{kept}; … and {len(parts) - kept.count('; ') - 1} more (training_window.json)"
