"""`python -m ml_assets.cli.audit`: verify the hash chain of every model's audit log.

Exit 0 when every chain is intact, 1 when one is broken (each break printed with its line).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from ml_assets.resources import PipelineResource
    from ml_assets.training.registry import read_audit, verify_audit

    pipeline = PipelineResource()
    logs = sorted(pipeline.audit_dir.glob("*.jsonl")) if pipeline.audit_dir.is_dir() else []
    broken = 0
    for log in logs:
        problems = verify_audit(pipeline.audit_dir, log.stem)
        entries = len(read_audit(pipeline.audit_dir, log.stem)) if not problems else None
        print(f"{log}: " + (f"intact, {entries} entries" if not problems else "BROKEN"))
        for problem in problems:
            print(f"  {problem}")
        broken += bool(problems)
    if not logs:
        print(f"no audit logs under {pipeline.audit_dir}")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
