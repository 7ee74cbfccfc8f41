"""`refflow plan`: JSON and text output, one-line errors with exit code 2, no PHI in errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
from click.testing import CliRunner

from refflow.cli import cli
from refflow.planning.schema import PLAN_SCHEMA

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "referrals" / "design-example.json"


def run(*args):
    return CliRunner().invoke(cli, ["plan", *args])


def test_plan_json_for_design_example():
    result = run(str(EXAMPLE), "--as-of", "2026-06-01")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    jsonschema.validate(plan, PLAN_SCHEMA)
    assert plan["decision"] == "review" and plan["risk"]["bone_category"] == "C"
    assert plan["as_of"] == "2026-06-01"
    again = run(str(EXAMPLE), "--as-of", "2026-06-01")
    assert again.output == result.output


def test_plan_text_format():
    result = run(str(EXAMPLE), "--as-of", "2026-06-01", "--format", "text")
    assert result.exit_code == 0, result.output
    assert "HELD FOR REVIEW" in result.output
    assert "Stop and call if:" in result.output and "Monday" in result.output


def test_missing_file_is_one_line_exit_2(tmp_path):
    result = run(str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1


def test_bad_json_and_invalid_referral_do_not_echo_phi(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run(str(bad))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    data = json.loads(EXAMPLE.read_text())
    data["patient"]["birth_date"] = "Zebulon-secret"
    data["patient"]["phone"] = "not-a-phone-Quixote"
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps(data))
    result = run(str(invalid))
    assert result.exit_code == 2
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "patient." in line
    assert "Zebulon" not in line and "Quixote" not in line


def test_bad_as_of():
    result = run(str(EXAMPLE), "--as-of", "yesterday")
    assert result.exit_code == 2


def test_console_script_stderr_one_line(tmp_path):
    missing = tmp_path / "missing.json"
    proc = subprocess.run([sys.executable, "-c", "from refflow.cli import main; main()", "plan", str(missing)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("refflow: error:")
