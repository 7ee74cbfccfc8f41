"""``refflow render REFERRAL.json --out DIR``: four files, or one line and exit 2."""

from __future__ import annotations

import json
import sys
import types

import pytest
from documents_pdf_checks import page_texts, plain

from refflow.cli import main

EXAMPLE_NAMES = ("Ann", "Lee", "ann@example.org")


@pytest.fixture
def engine(monkeypatch, sample_plan):
    """The real plan engine when it exists; until then a stand-in returning the fixture plan."""
    try:
        import refflow.planning.engine  # noqa: F401
    except ImportError:
        stub = types.ModuleType("refflow.planning.engine")
        stub.build_plan = lambda referral, as_of: dict(sample_plan, as_of=as_of.isoformat())
        monkeypatch.setitem(sys.modules, "refflow.planning.engine", stub)


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("REFFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REFFLOW_CLINIC_NAME", "Lakeside Physical Therapy")
    monkeypatch.setenv("REFFLOW_CLINIC_PHONE", "+1 763 555 0100")
    monkeypatch.delenv("REFFLOW_PAPER", raising=False)
    monkeypatch.delenv("REFFLOW_FAX_RESOLUTION", raising=False)


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_render_writes_the_four_documents(engine, env, tmp_path, capsys):
    from pathlib import Path

    example = Path(__file__).parents[2] / "examples" / "referrals" / "design-example.json"
    out_dir = tmp_path / "out"
    code, out, err = run(["render", str(example), "--out", str(out_dir), "--as-of", "2026-11-25",
                          "--resolution", "normal", "--paper", "a4"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["chart.pdf", "fax.tiff", "handout.pdf",
                                                         "summary.pdf"]
    for name in ("handout.pdf", "summary.pdf", "chart.pdf"):
        assert (out_dir / name).read_bytes().startswith(b"%PDF-")
    assert len(page_texts((out_dir / "summary.pdf").read_bytes())) == 1
    assert (out_dir / "fax.tiff").read_bytes()[:4] == b"II*\x00"
    assert "+1 763 555 0100" in plain(" ".join(page_texts((out_dir / "handout.pdf").read_bytes())))
    for name in ("handout.pdf", "summary.pdf", "chart.pdf", "fax.tiff"):
        assert f"wrote {out_dir / name}" in out
    # No document lands in the data dir (the CLI shell may keep its secret key there).
    data = tmp_path / "data"
    assert not data.exists() or {p.name for p in data.iterdir()} <= {"secret_key"}


@pytest.mark.parametrize("content,expected", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"patient": {"given_name": "Ann", "family_name": "Lee",
                             "birth_date": "2999-01-01", "sex": "female"},
                 "diagnosis": {"codes": ["M81.0"]}}), "patient.birth_date"),
    (json.dumps({"patient": {"given_name": "Ann", "family_name": "Lee",
                             "birth_date": "1951-03-02", "sex": "female",
                             "email": "ann@example.org", "shoe_size": 7},
                 "diagnosis": {"codes": ["M81.0"]}}), "patient.shoe_size"),
])
def test_bad_referral_is_one_line_exit_2_without_patient_values(engine, env, tmp_path, capsys,
                                                                 content, expected):
    bad = tmp_path / "referral.json"
    bad.write_text(content)
    code, _, err = run(["render", str(bad), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and expected in err
    for value in EXAMPLE_NAMES + ("2999",):
        assert value not in err
    assert not (tmp_path / "out").exists()


def test_missing_file_is_exit_2(engine, env, tmp_path, capsys):
    code, _, err = run(["render", str(tmp_path / "nope.json"), "--out", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
