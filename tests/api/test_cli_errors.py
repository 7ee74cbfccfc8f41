"""Bad input on the command line: one line on stderr naming the problem, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
