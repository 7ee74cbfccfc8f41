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


# -- managing users: list, disable, enable, reset-password, unlock, role ---------------

@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A Redis server of this module's own (the web's shared sign-in counters)."""
    from refflow import embedded

    proc, url = embedded.start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def cli(settings, redis_url):
    """``refflow ...`` on the test's database (SQLite or PostgreSQL); with
    ``redis=True`` the web's Redis is named, so failed sign-ins can be seen."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")}
    env.update({"REFFLOW_DATA_DIR": str(settings.data_dir), "REFFLOW_SECRET_KEY": "cli-test",
                "REFFLOW_LOGIN_DELAY_BASE_SECONDS": "600"})
    if settings.database_schema:
        env.update({"REFFLOW_DATABASE_URL": settings.database_url,
                    "REFFLOW_DATABASE_SCHEMA": settings.database_schema})

    def run(*args, stdin="", redis=False):
        extra = {"REFFLOW_BROKER_URL": redis_url} if redis else {}
        return subprocess.run([sys.executable, "-m", "refflow", *args], env={**env, **extra},
                              input=stdin, capture_output=True, text=True, timeout=60)

    run.env = {**env, "REFFLOW_BROKER_URL": redis_url}
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # no counters of the other database's run
    return run


def _ok(out) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _error(out) -> str:
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("refflow: error:"), out.stderr
    return out.stderr


def test_user_list_shows_everyone_with_role_practice_and_state(cli, db):
    assert cli("practice", "add", "Lakeside").returncode == 0
    admin = _ok(cli("user", "add", "Boss@Clinic.example", "--role", "admin", "--json"))
    _ok(cli("user", "add", "front@lakeside.example", "--role", "practice", "--practice",
            "Lakeside", "--json"))
    listed = _ok(cli("user", "list", "--json"))["items"]
    assert [(u["email"], u["role"], u["practice"], u["active"]) for u in listed] == [
        ("Boss@clinic.example", "admin", None, True),
        ("front@lakeside.example", "practice", "Lakeside", True)]
    assert listed[0]["id"] == admin["id"] and listed[0]["last_login_at"] is None
    assert listed[0]["locked"] is None  # no Redis named: the counters cannot be read
    text = cli("user", "list").stdout.splitlines()
    assert text[0].split("\t")[:4] == ["Boss@clinic.example", "admin", "-", "active"]


def _person(db, email: str, role: str) -> dict:
    """A user made in the database directly (the commands under test come after)."""
    from refflow.accounts.users import create_user, generate_password

    password = generate_password()
    with db.session() as s:
        return {"id": create_user(s, email, password, role=role).id, "password": password}


def test_disable_ends_sessions_and_enable_lets_them_back(cli, db):
    from refflow.accounts.users import session_user, verify_login

    _person(db, "boss@clinic.example", "admin")
    staff = _person(db, "desk@clinic.example", "staff")
    with db.session() as s:
        cookie = {"user_id": staff["id"], "epoch": s.get(User, staff["id"]).session_epoch}
        assert session_user(s, cookie) is not None

    out = _ok(cli("user", "disable", "DESK@clinic.example", "--json"))
    assert out["active"] is False and out["email"] == "desk@clinic.example"
    with db.session() as s:
        assert session_user(s, cookie) is None  # the open session is refused at once
        assert verify_login(s, "desk@clinic.example", staff["password"]) is None
    assert "disabled" in cli("user", "list").stdout.splitlines()[1]

    assert _ok(cli("user", "enable", "desk@clinic.example", "--json"))["active"] is True
    with db.session() as s:
        assert verify_login(s, "desk@clinic.example", staff["password"]) is not None
        assert session_user(s, cookie) is None  # the old session stays ended
    assert cli("user", "enable", "desk@clinic.example").stdout.strip() == \
        "user desk@clinic.example enabled"


def test_reset_password_prints_a_new_one_once_and_ends_sessions(cli, db):
    from refflow.accounts.users import session_user, verify_login

    staff = _person(db, "desk@clinic.example", "staff")
    with db.session() as s:
        cookie = {"user_id": staff["id"], "epoch": s.get(User, staff["id"]).session_epoch}
    out = cli("user", "reset-password", "desk@clinic.example")
    assert out.returncode == 0, out.stderr
    [password] = [line.split(": ", 1)[1] for line in out.stdout.splitlines()
                  if line.startswith("password (shown once)")]
    again = _ok(cli("user", "reset-password", "desk@clinic.example", "--json"))
    assert again["password"] != password and len(again["password"]) >= 10
    with db.session() as s:
        assert verify_login(s, "desk@clinic.example", staff["password"]) is None
        assert verify_login(s, "desk@clinic.example", password) is None
        assert verify_login(s, "desk@clinic.example", again["password"]) is not None
        assert session_user(s, cookie) is None


def test_role_changes_and_the_last_admin_is_kept(cli, db, make_practice):
    from refflow.accounts.users import verify_login

    make_practice("Lakeside")
    boss = _person(db, "boss@clinic.example", "admin")
    _person(db, "desk@clinic.example", "staff")

    for args in (("user", "disable", "boss@clinic.example"),
                 ("user", "role", "boss@clinic.example", "staff")):
        err = _error(cli(*args))
        assert "last active admin" in err and "make another user an admin first" in err
    with db.session() as s:
        row = s.get(User, boss["id"])
        assert row.active and row.role == "admin"

    assert _ok(cli("user", "role", "desk@clinic.example", "admin", "--json"))["role"] == "admin"
    # two admins: either may go now, but not both
    assert _ok(cli("user", "role", "boss@clinic.example", "staff", "--json"))["role"] == "staff"
    assert "last active admin" in _error(cli("user", "disable", "desk@clinic.example"))
    # a disabled admin does not count as the one kept
    assert _ok(cli("user", "role", "boss@clinic.example", "admin", "--json"))["role"] == "admin"
    _ok(cli("user", "disable", "boss@clinic.example", "--json"))
    assert "last active admin" in _error(cli("user", "role", "desk@clinic.example", "staff"))

    moved = _ok(cli("user", "role", "boss@clinic.example", "practice", "--practice", "Lakeside",
                    "--json"))
    assert moved["role"] == "practice" and moved["practice"] == "Lakeside"
    with db.session() as s:
        assert verify_login(s, "boss@clinic.example", boss["password"]) is None  # still disabled


def test_user_command_errors_are_one_line(cli, db):
    _person(db, "desk@clinic.example", "staff")
    for args, words in [
        (("user", "disable", "nobody@clinic.example"), "no user with the email"),
        (("user", "reset-password", "nobody@clinic.example"), "no user with the email"),
        (("user", "role", "desk@clinic.example", "practice"), "needs --practice"),
        (("user", "role", "desk@clinic.example", "staff", "--practice", "Lakeside"),
         "only for practice users"),
        (("user", "role", "desk@clinic.example", "practice", "--practice", "Nowhere"),
         "no practice named"),
        (("user", "unlock", "desk@clinic.example"), "REFFLOW_BROKER_URL"),
    ]:
        assert words in _error(cli(*args)), args


def test_unlock_forgets_the_failed_sign_ins(cli, db):
    """The web's counters in Redis: the account is slowed after its free
    failures (a 10 minute delay here), listed as locked, and unlock clears it."""
    from refflow.config import load_settings
    from refflow.web import signin_throttle

    desk = _person(db, "desk@clinic.example", "staff")
    _person(db, "other@clinic.example", "staff")
    throttle = signin_throttle.from_settings(load_settings(cli.env))
    account = throttle.account("desk@clinic.example")
    device = "a1b2c3"
    for _ in range(throttle.policy.free):
        assert throttle.attempt(account, "192.0.2.7") is None  # each a wrong password
        assert throttle.attempt(account, "192.0.2.7", device) is None  # a trusted browser
    assert throttle.attempt(account, "192.0.2.7") > 500
    listed = {u["email"]: u["locked"] for u in _ok(cli("user", "list", "--json",
                                                        redis=True))["items"]}
    assert listed == {"desk@clinic.example": True, "other@clinic.example": False}

    assert _ok(cli("user", "unlock", "desk@clinic.example", "--json", redis=True)) == {
        "id": desk["id"], "email": "desk@clinic.example", "unlocked": True}
    assert throttle.attempt(account, "192.0.2.7") is None
    assert throttle.attempt(account, "192.0.2.7", device) is None
    assert not any(_ok(cli("user", "list", "--json", redis=True))["items"][i]["locked"]
                   for i in (0, 1))


def test_every_change_is_audited_by_id_never_by_email(cli, db):
    from refflow.db.models import AuditEntry

    _ok(cli("user", "add", "boss@clinic.example", "--role", "admin", "--json"))
    desk = _ok(cli("user", "add", "desk@clinic.example", "--role", "staff", "--json"))
    for args in (("disable",), ("enable",), ("reset-password",), ("role", None)):
        command = [args[0], "desk@clinic.example"] + (["admin"] if len(args) == 2 else [])
        assert cli("user", *command).returncode == 0
    assert cli("user", "unlock", "desk@clinic.example", redis=True).returncode == 0
    with db.session() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.actor == "cli")
                         .order_by(AuditEntry.id)).all()
    mine = [(r.action, r.detail) for r in rows if desk["id"] in (r.detail or "")]
    assert [a for a, _ in mine] == ["user.add", "user.disable", "user.enable",
                                    "user.password_reset", "user.role", "user.unlock"]
    assert ("user.role", f"user {desk['id']}; staff -> admin") in mine
    assert not any("@" in (r.detail or "") for r in rows)
