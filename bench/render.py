"""Benchmark: rendering the documents of one referral, and our PDF→fax conversion
beside Ghostscript's ``tiffg3`` device (what fax servers use) on the same PDF.

    python bench/render.py [--runs 30] [--referral FILE] [--resolution fine] [--paper letter]

Prints one JSON object. Times are medians over the runs, in milliseconds;
``cpu_ms`` is process CPU time. Targets (issue 4): handout < 15 ms, all
documents of one referral < 60 ms CPU, conversion ≥ 3× faster than gs, and
tiffcheck accepting our file as it is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERRAL = ROOT / "examples" / "referrals" / "design-example.json"
FIXTURE_PLAN = ROOT / "tests" / "documents" / "sample_plan_release.json"
AS_OF = dt.date(2026, 11, 25)
LINES = {"fine": 196, "normal": 98}
LENGTH_MM = {"letter": 280, "a4": 297}


def timed(fn, runs: int) -> tuple[float, float, object]:
    """(median wall ms, median CPU ms, last result) of ``fn()`` over ``runs`` runs."""
    fn()  # warm up (fonts, imports)
    walls, cpus = [], []
    result = None
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        walls.append((time.perf_counter() - w0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    return statistics.median(walls), statistics.median(cpus), result


def tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


def tiffcheck(path: Path, resolution: str, paper: str) -> str | None:
    exe = tool("tiffcheck")
    if not exe:
        return None
    out = subprocess.run([exe, "-r", str(LINES[resolution]), "-w", "1728", "-l",
                          str(LENGTH_MM[paper]), "-1", str(path)],
                         capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else ""


def ghostscript(pdf: Path, out: Path, resolution: str, paper: str) -> tuple[float, float]:
    """Wall and CPU ms of one gs run (process start-up included, as a fax server pays it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        ["gs", "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=tiffg3",
         f"-r204x{LINES[resolution]}", f"-sPAPERSIZE={paper}", "-dFIXEDMEDIA", "-dPDFFitPage",
         f"-sOutputFile={out}", str(pdf)],
        check=True, capture_output=True)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--referral", type=Path, default=DEFAULT_REFERRAL)
    parser.add_argument("--resolution", choices=("fine", "normal"), default="fine")
    parser.add_argument("--paper", choices=("letter", "a4"), default="letter")
    args = parser.parse_args()

    from refflow.documents import (
        ClinicInfo,
        pdf_to_fax_tiff,
        render_all,
        render_fax,
        render_handout,
        render_summary,
    )
    from refflow.intake.schemas import Referral

    referral = Referral.model_validate(json.loads(args.referral.read_text()))
    try:
        from refflow.planning.engine import build_plan

        plan, plan_source = build_plan(referral, as_of=AS_OF), "refflow.planning.engine"
    except ImportError:
        plan, plan_source = json.loads(FIXTURE_PLAN.read_text()), str(FIXTURE_PLAN.relative_to(ROOT))
    clinic = ClinicInfo("Lakeside Physical Therapy", "+1 763 555 0100", "+1 763 555 0101",
                        "America/Chicago")
    opts = {"resolution": args.resolution, "paper": args.paper}
    runs = args.runs

    handout_ms, handout_cpu, _ = timed(
        lambda: render_handout(referral, plan, clinic, paper=args.paper), runs)
    summary_ms, summary_cpu, summary = timed(
        lambda: render_summary(referral, plan, clinic, paper=args.paper), runs)
    fax_ms, fax_cpu, _ = timed(lambda: render_fax(referral, plan, clinic, **opts), runs)
    all_ms, all_cpu, documents = timed(lambda: render_all(referral, plan, clinic, **opts), runs)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pdf_path = tmp / "summary.pdf"
        pdf_path.write_bytes(summary)
        conv_ms, conv_cpu, ours = timed(lambda: pdf_to_fax_tiff(summary, **opts), runs)
        ours_path = tmp / "ours.tiff"
        ours_path.write_bytes(ours)
        fax_path = tmp / "fax.tiff"
        fax_path.write_bytes(documents["fax.tiff"])
        gs_result = None
        if shutil.which("gs"):
            gs_path = tmp / "gs.tiff"
            ghostscript(pdf_path, gs_path, args.resolution, args.paper)  # warm the page cache
            gs_runs = [ghostscript(pdf_path, gs_path, args.resolution, args.paper)
                       for _ in range(max(5, runs // 3))]
            gs_wall = statistics.median(w for w, _ in gs_runs)
            gs_cpu = statistics.median(c for _, c in gs_runs)
            gs_result = {
                "gs_ms": round(gs_wall, 1),
                "gs_cpu_ms": round(gs_cpu, 1),
                "speedup_wall": round(gs_wall / conv_ms, 2),
                "speedup_cpu": round(gs_cpu / conv_cpu, 2) if conv_cpu else None,
                "gs_tiffcheck": tiffcheck(gs_path, args.resolution, args.paper),
            }
        # The same comparison on a one-page PDF (the fax cover page), where
        # Ghostscript's start-up weighs most.
        from refflow.documents.cover import render_cover

        cover = render_cover(referral, clinic, total_pages=2, paper=args.paper)
        cover_path = tmp / "cover.pdf"
        cover_path.write_bytes(cover)
        cover_ms, cover_cpu, _ = timed(lambda: pdf_to_fax_tiff(cover, **opts), runs)
        one_page = {"ours_ms": round(cover_ms, 2), "ours_cpu_ms": round(cover_cpu, 2)}
        if shutil.which("gs"):
            gs_runs = [ghostscript(cover_path, tmp / "gs-cover.tiff", args.resolution, args.paper)
                       for _ in range(max(5, runs // 3))]
            gs_wall = statistics.median(w for w, _ in gs_runs)
            one_page.update(gs_ms=round(gs_wall, 1), speedup_wall=round(gs_wall / cover_ms, 2))

        from PIL import Image

        with Image.open(ours_path) as im:
            pages = im.n_frames
        result = {
            "bench": "render",
            "python": platform.python_version(),
            "runs": runs,
            "plan_source": plan_source,
            "decision": plan.get("decision"),
            "resolution": args.resolution,
            "paper": args.paper,
            "per_referral_ms": {
                "handout_pdf": round(handout_ms, 2),
                "summary_pdf": round(summary_ms, 2),
                "fax_tiff": round(fax_ms, 2),
                "render_all": round(all_ms, 2),
            },
            "cpu_ms": {
                "handout_pdf": round(handout_cpu, 2),
                "summary_pdf": round(summary_cpu, 2),
                "fax_tiff": round(fax_cpu, 2),
                "all_documents": round(all_cpu, 2),
            },
            "sizes_bytes": {name: len(data) for name, data in documents.items()},
            "fax_pages": pages + 1,
            "conversion": {
                "pdf_pages": pages,
                "ours_ms": round(conv_ms, 2),
                "ours_cpu_ms": round(conv_cpu, 2),
                "ours_ms_per_page": round(conv_ms / pages, 2),
                **(gs_result or {"gs": "not installed"}),
                "ours_tiffcheck": tiffcheck(ours_path, args.resolution, args.paper),
            },
            "conversion_one_page": one_page,
            "fax_tiffcheck": tiffcheck(fax_path, args.resolution, args.paper),
            "targets": {
                "handout_under_15ms": handout_ms < 15,
                "all_documents_under_60ms_cpu": all_cpu < 60,
                "conversion_3x_faster_than_gs": bool(gs_result and gs_result["speedup_wall"] >= 3),
                "tiffcheck_ok": tiffcheck(fax_path, args.resolution, args.paper) == "OK",
            },
            "cpus": os.cpu_count(),
        }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
