"""`refflow practice …` and `refflow user …` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from argon2 import PasswordHasher
from sqlalchemy import delete, select

from refflow.db.models import ApiKey, User


@pytest.fixture
def run(sqlite_settings):
    env = {**os.environ, "REFFLOW_DATA_DIR": str(sqlite_settings.data_dir),
           "REFFLOW_SECRET_KEY": "x"}
    env.pop("REFFLOW_DATABASE_URL", None)

    def run(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "refflow", *args], env=env,
                              input=stdin, capture_output=True, text=True, timeout=60)

    return run


def test_practice_add_prints_a_working_key_once(run, sqlite_settings):
    from refflow.accounts.principal import key_principal
    from refflow.db import database_for

    out = run("practice", "add", "Lakeside Family Practice", "--fax", "(763) 555-0198",
              "--email", "front@lakeside.example", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) >= {"id", "name", "api_key"}
    assert result["fax"] == "+17635550198"
    with database_for(sqlite_settings).session() as session:
        principal = key_principal(session, result["api_key"])
        assert principal is not None and principal.practice_id == result["id"]
        # stored hashed only
        hashes = session.scalars(select(ApiKey.key_hash)).all()
        assert result["api_key"] not in hashes


def test_cli_errors_are_one_line_exit_2(run):
    assert run("practice", "add", "Dup").returncode == 0
    for args in (("practice", "add", "Dup"),
                 ("practice", "add", "Other", "--fax", "12"),
                 ("practice", "key", "Nobody"),
                 ("user", "add", "not-an-email", "--role", "staff"),
                 ("user", "add", "p@example.org", "--role", "practice")):
        out = run(*args)
        assert out.returncode == 2, (args, out)
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("refflow: error:"), out.stderr
        assert "Traceback" not in out.stderr


def test_user_add_generates_a_password_when_not_on_a_terminal(run, sqlite_settings):
    from refflow.db import database_for

    assert run("practice", "add", "Lakeside").returncode == 0
    out = run("user", "add", "front@lakeside.example", "--role", "practice", "--practice",
              "Lakeside", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    with database_for(sqlite_settings).session() as session:
        user = session.scalar(select(User).where(User.email == "front@lakeside.example"))
        assert user.role == "practice" and user.practice_id
        assert user.password_hash.startswith("$argon2")
        assert PasswordHasher().verify(user.password_hash, result["password"])


@pytest.mark.parametrize("args", [("practice", "list"), ("demo", "--url", "http://127.0.0.1:9"),
                                  ("user", "add", "ops@clinic.example", "--role", "staff")])
def test_commands_on_a_data_dir_without_a_database_say_so_in_one_line(args, tmp_path):
    env = {**os.environ, "REFFLOW_DATA_DIR": str(tmp_path / "nothing-here"),
           "REFFLOW_SECRET_KEY": "x"}
    env.pop("REFFLOW_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-m", "refflow", *args], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert "no refflow database" in line and "refflow db upgrade" in line


def test_refflow_run_staff_login_is_kept_and_always_works(settings, tmp_path):
    from refflow.accounts.users import verify_login
    from refflow.commands.run import STAFF_EMAIL, _login_line, _staff_login
    from refflow.db import database_for

    db = database_for(settings)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()

    login = _staff_login(db, first)
    assert login["email"] == STAFF_EMAIL and login["password"]
    assert (first / "staff-login.json").stat().st_mode & 0o777 == 0o600
    assert _staff_login(db, first) == login  # the next run shows the same login

    # the user exists, this data dir has no password for it: say so, no crash
    other = _staff_login(db, second)
    assert other == {"email": STAFF_EMAIL, "password": None}
    line = _login_line(other)
    assert "exists already" in line and "refflow user add" in line and "\n" not in line
    assert not (second / "staff-login.json").exists()

    # the file names a user the database no longer has: a new one, never a dead login
    with db.session() as session:
        session.execute(delete(User).where(User.email == STAFF_EMAIL))
    again = _staff_login(db, first)
    assert again["password"] and again["password"] != login["password"]
    assert json.loads((first / "staff-login.json").read_text()) == again
    with db.session() as session:
        assert verify_login(session, STAFF_EMAIL, again["password"]) is not None
    assert _login_line(again) == f"staff login: {STAFF_EMAIL} / {again['password']}"


def test_user_add_on_a_terminal_asks_for_the_password_even_with_json(sqlite_settings):
    """DESIGN.md: a password is asked for on a terminal, generated without one.
    With --json on a terminal (``KEY=$(refflow user add … --json)``) the
    prompts go to the terminal and stdout stays one JSON object, without a
    password."""
    import fcntl
    import pty
    import termios

    from refflow.accounts.users import verify_login
    from refflow.db import database_for

    env = {**os.environ, "REFFLOW_DATA_DIR": str(sqlite_settings.data_dir),
           "REFFLOW_SECRET_KEY": "x"}
    env.pop("REFFLOW_DATABASE_URL", None)
    controller, terminal = pty.openpty()
    try:
        # a session of its own whose controlling terminal is the pty (the
        # password is read from the terminal, as getpass does)
        proc = subprocess.Popen([sys.executable, "-m", "refflow", "user", "add",
                                 "lead@clinic.example", "--role", "staff", "--json"],
                                env=env, stdin=terminal, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        for prompt in ("Password", "Repeat for confirmation"):
            _answer_prompt(controller, terminal, proc, prompt, b"tall-oak-river-42\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["email"] == "lead@clinic.example" and "password" not in result
    with database_for(sqlite_settings).session() as session:
        assert verify_login(session, "lead@clinic.example", "tall-oak-river-42") is not None


def _answer_prompt(controller: int, terminal: int, proc, prompt: str, answer: bytes,
                   timeout: float = 30) -> None:
    """Type ``answer`` once the terminal shows ``prompt`` and reads with echo off
    (as getpass does; typed earlier, getpass would discard it)."""
    import select
    import termios
    import time

    deadline, shown = time.monotonic() + timeout, b""
    while prompt.encode() not in shown or termios.tcgetattr(terminal)[3] & termios.ECHO:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, shown
        if select.select([controller], [], [], 0.01)[0]:
            shown += os.read(controller, 1024)
    os.write(controller, answer)
