"""Bad input on the command line: one line on stderr naming the problem, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "referrals" / "design-example.json"
UNREACHABLE = "postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:1/x"


@pytest.fixture
def refflow(tmp_path):
    """Runs ``refflow ARGS`` as an operator does, on an empty data dir."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    base.update(REFFLOW_DATA_DIR=str(tmp_path / "data"), REFFLOW_SECRET_KEY="x")

    def run(*args, cwd=tmp_path, **env):
        return subprocess.run([sys.executable, "-m", "refflow", *args], env={**base, **env},
                              cwd=cwd, capture_output=True, text=True, timeout=60)

    return run


def one_line_error(out) -> str:
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr, out.stderr
    [line] = out.stderr.splitlines()
    assert out.stderr == line + "\n" and line.startswith("refflow: error: "), out.stderr
    return line


@pytest.mark.parametrize("args", [("db", "upgrade"), ("db", "current")])
def test_db_commands_on_an_unreachable_database_say_so_without_the_password(refflow, args):
    line = one_line_error(refflow(*args, REFFLOW_DATABASE_URL=UNREACHABLE))
    assert "cannot reach the database at" in line and "127.0.0.1:1/x" in line
    assert "s3cret-pw" not in line


def test_db_upgrade_to_an_unknown_revision_names_it(refflow):
    line = one_line_error(refflow("db", "upgrade", "--revision", "zzz"))
    assert "revision zzz" in line


@pytest.mark.parametrize("url", ["notaurl", "mysql://u:s3cret-pw@h/db"])
@pytest.mark.parametrize("args", [("practice", "list"), ("db", "current")])
def test_a_database_url_refflow_cannot_use_names_the_setting_and_what_works(refflow, url, args):
    line = one_line_error(refflow(*args, REFFLOW_DATABASE_URL=url))
    assert "REFFLOW_DATABASE_URL" in line and "sqlite" in line and "postgresql" in line
    assert "s3cret-pw" not in line


@pytest.mark.parametrize(("args", "message"), [
    (("nosuch",), "No such command 'nosuch'. (see 'refflow --help')"),
    (("practice", "add"), "Missing argument 'NAME'. (see 'refflow practice add --help')"),
    (("user", "add", "a@example.org"), "Missing option '--role'. Choose from: staff, admin"),
    (("user", "add", "a@example.org", "--role", "boss"), "Invalid value for '--role'"),
    (("db", "upgrade", "--bogus"), "No such option '--bogus'."),
])
def test_usage_errors_are_one_line_with_clicks_message(refflow, args, message):
    assert message in one_line_error(refflow(*args))


@pytest.mark.parametrize("command", ["run", "web"])
@pytest.mark.parametrize("port", ["0", "65536"])
def test_serving_commands_refuse_a_port_out_of_range(refflow, command, port):
    line = one_line_error(refflow(command, "--port", port))
    assert "Invalid value for '--port'" in line and "1<=x<=65535" in line


@pytest.mark.parametrize("args", [("--version",), ("plan", str(EXAMPLE)), ("plugins",),
                                  ("nosuch",)])
def test_commands_that_need_no_data_dir_leave_the_working_directory_alone(tmp_path, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    out = subprocess.run([sys.executable, "-m", "refflow", *args], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == (2 if args == ("nosuch",) else 0), out.stderr
    assert list(tmp_path.iterdir()) == []  # no refflow-data/secret_key


def test_serving_commands_still_keep_one_secret_key_per_data_dir(tmp_path, monkeypatch):
    from refflow.commands.context import settings_or_exit

    for name in [k for k in os.environ if k.startswith("REFFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REFFLOW_DATA_DIR", str(tmp_path / "data"))
    # what `refflow run` and `refflow web` read
    first = settings_or_exit(create_data_dir=True).secret_key
    assert first and settings_or_exit(create_data_dir=True).secret_key == first
    assert settings_or_exit().secret_key == first  # other commands read the same key
    assert (tmp_path / "data" / "secret_key").read_text().strip() == first
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600
