"""Benchmark: ``refflow audit export`` speed and memory, small and large trail.

    python bench/audit_export.py [--rows 100000] [--baseline-rows 10000]

Fills a fresh SQLite database with audit entries (a read, a change and a
refused read of referrals, by ids, as the web writes them), then runs the
export as an operator would (``python -m refflow audit export --since ...
--out FILE``) in both formats, and prints one JSON object: for each format
and size, entries a second (wall) and the peak resident memory of the export
process. The baseline is the same export of a trail ten times smaller: the
export streams in batches, so its peak memory should stay about the same
while the trail grows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def fill(data_dir: Path, rows: int) -> None:
    from refflow.config import load_settings
    from refflow.db import database_for, migrate
    from refflow.db.models import AuditEntry

    settings = load_settings({}, data_dir=data_dir, secret_key="bench")
    db = database_for(settings)
    migrate.upgrade(db)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    actions = ("referral.read", "referral.cancel", "referral.read_refused")
    with db.engine.begin() as conn:
        batch = []
        for i in range(rows):
            batch.append({"at": start + dt.timedelta(seconds=i), "actor": f"apikey:{i % 50:012d}",
                          "action": actions[i % 3], "referral_id": str(uuid.UUID(int=i // 3)),
                          "ip": f"10.0.{i % 250}.{i % 200}", "detail": "GET fhir.read_task"})
            if len(batch) == 5000:
                conn.execute(AuditEntry.__table__.insert(), batch)
                batch = []
        if batch:
            conn.execute(AuditEntry.__table__.insert(), batch)
    db.dispose()


def export(data_dir: Path, fmt: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    env.update({"REFFLOW_DATA_DIR": str(data_dir), "REFFLOW_SECRET_KEY": "bench"})
    out = data_dir / f"audit.{fmt}"
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, sys.executable, "-m", "refflow", "audit", "export",
         "--since", "2026-01-01", "--format", fmt, "--out", str(out)],
        env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - began
    lines = sum(1 for _ in out.open())
    return {"entries": lines, "seconds": round(seconds, 2),
            "entries_per_second": round(lines / seconds),
            "peak_rss_mib": round(int(result.stdout.strip()) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000)
    args = parser.parse_args()
    report = {"python": sys.version.split()[0], "database": "sqlite"}
    for label, rows in (("baseline", args.baseline_rows), ("large", args.rows)):
        with tempfile.TemporaryDirectory() as tmp:
            fill(Path(tmp), rows)
            report[label] = {fmt: export(Path(tmp), fmt) for fmt in ("jsonl", "fhir")}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
