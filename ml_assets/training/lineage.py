"""Code version of a run: the git commit of the project when there is one."""

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
