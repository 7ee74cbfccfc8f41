"""Issue 21: every command says where its data lives, and a command that only
uses a service's data (run from a folder that has none) refuses in one line,
exit 2, and leaves the folder as it was: no database, no secret key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "referrals" / "design-example.json"


def refflow(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    return subprocess.run([sys.executable, "-m", "refflow", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ["practice", "list"],
    ["practice", "add", "Lakeside Family Practice", "--fax", "+1 763 555 0198"],
    ["user", "list"],
    ["demo", "--timeout", "1"],
    ["audit", "export", "--since", "2026-01-01"],
    ["webhook", "list", "Lakeside"],
])
def test_a_command_outside_a_data_dir_creates_nothing(tmp_path, args):
    done = refflow(args, tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("refflow: error: "), done.stderr
    assert str(tmp_path / "refflow-data") in lines[0] and "REFFLOW_DATA_DIR" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_plan_and_render_need_no_data_dir(tmp_path):
    assert refflow(["plan", str(EXAMPLE), "--format", "text"], tmp_path).returncode == 0
    out = tmp_path / "docs"
    assert refflow(["render", str(EXAMPLE), "--out", str(out)], tmp_path).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_db_upgrade_makes_the_data_dir_and_then_commands_use_it(tmp_path):
    assert refflow(["db", "upgrade"], tmp_path).returncode == 0
    assert {p.name for p in (tmp_path / "refflow-data").iterdir()} >= {"refflow.db",
                                                                       "secret_key"}
    done = refflow(["practice", "list"], tmp_path)
    assert done.returncode == 0, done.stderr


def test_the_help_says_where_data_lives(tmp_path):
    done = refflow(["--help"], tmp_path)
    assert "REFFLOW_DATA_DIR" in done.stdout and "./refflow-data" in done.stdout
