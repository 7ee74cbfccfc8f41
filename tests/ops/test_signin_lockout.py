"""Sign-in protection across real ``refflow web`` processes sharing one Redis
and one database: failures are counted per account whatever process and
client address they come from, survive a restart, and slow the account with
a growing delay that the real user waits out (no hard lock)."""

from __future__ import annotations

import contextlib
import re
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from sqlalchemy import func, select

from refflow import embedded
from refflow.accounts.users import create_user
from refflow.config import load_settings
from refflow.db import database_for, migrate
from refflow.db.models import AuditEntry
from refflow.web.signin_throttle import KEY_PREFIX, Policy, SigninThrottle

pytestmark = pytest.mark.faults

PASSWORD = "correct horse battery staple"
WRONG = "not the password"
WRONG_TEXT = "The email or password is not right."
DELAY_TEXT = "Too many failed sign-ins"
FAST = {"REFFLOW_LOGIN_DELAY_BASE_SECONDS": "1", "REFFLOW_LOGIN_DELAY_MAX_SECONDS": "4"}
SLOW = {"REFFLOW_LOGIN_DELAY_BASE_SECONDS": "600", "REFFLOW_LOGIN_DELAY_MAX_SECONDS": "3600"}


class Web:
    """``refflow web`` subprocesses (one gunicorn worker each) on one data dir."""

    def __init__(self, env: dict, data_dir) -> None:
        self.env, self.data_dir = env, data_dir
        self.procs: dict[str, tuple] = {}  # name -> (process, base URL)

    def start(self, name: str, **extra_env: str) -> str:
        import os
        import subprocess
        import sys

        port = embedded.free_port()
        log = open(self.data_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "refflow", "web", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--threads", "4"], env={**self.env, **extra_env},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # bound, or its worker still loading
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):  # not left serving after it
                    os.killpg(proc.pid, signal.SIGKILL)
                raise AssertionError((self.data_dir / f"{name}.log").read_text()[-3000:])
            time.sleep(0.1)
        self.procs[name] = (proc, url)
        return url

    def url(self, name: str) -> str:
        return self.procs[name][1]

    def stop(self, name: str) -> None:
        import os

        proc, _ = self.procs.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture(scope="module")
def web(tmp_path_factory, redis_server):
    import os

    data_dir = tmp_path_factory.mktemp("signin")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REFFLOW_")},
        "REFFLOW_DATA_DIR": str(data_dir),
        "REFFLOW_BROKER_URL": redis_server.url,
        "REFFLOW_SECRET_KEY": "signin-test",
        "REFFLOW_PROXY_HOPS": "1",
        "REFFLOW_LOGIN_RATE_LIMIT": "1000/minute",  # the per-address request limit stays out
        **FAST,
    }
    settings = load_settings(env)
    migrate.upgrade(database_for(settings))
    w = Web(env, data_dir)
    w.settings, w.db = settings, database_for(settings)
    w.start("one")
    w.start("two")
    yield w
    w.stop_all()
    w.db.dispose()


@pytest.fixture
def staff(web) -> str:
    email = f"staff-{uuid.uuid4().hex[:8]}@clinic.example"
    with web.db.session() as s:
        create_user(s, email, PASSWORD, role="staff")
    return email


def _address() -> str:
    return "2001:db8::" + ":".join(uuid.uuid4().hex[i:i + 4] for i in range(0, 16, 4))


def sign_in(base: str, email: str, password: str, address: str | None = None,
            browser: requests.Session | None = None) -> requests.Response:
    """A browser (new unless given) at ``address`` posts the sign-in form."""
    browser = browser or requests.Session()
    headers = {"X-Forwarded-For": address or _address()}
    page = browser.get(base + "/login", headers=headers, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return browser.post(base + "/login", headers=headers, allow_redirects=False, timeout=30,
                        data={"email": email, "password": password, "csrf_token": token})


def outcome(r: requests.Response) -> str:
    if r.status_code == 401 and WRONG_TEXT in r.text:
        return "checked"
    if r.status_code == 429 and DELAY_TEXT in r.text and "Try again in" in r.text:
        assert int(r.headers["Retry-After"]) >= 1
        return "delayed"
    if r.status_code == 302:
        return "signed in"
    raise AssertionError(f"{r.status_code}: {r.text[:500]}")


def account(web, email: str) -> str:
    """The account's id in Redis keys, audit entries and logs."""
    return SigninThrottle(Policy(), web.settings.secret_key).account(email)


def failed_checks(web, email: str) -> int:
    with web.db.session() as s:
        return s.scalar(select(func.count(AuditEntry.id)).where(
            AuditEntry.action == "login.failed",
            AuditEntry.detail == f"account {account(web, email)[:12]}"))


def test_40_guesses_from_40_addresses_on_two_processes_then_the_user_signs_in(web, staff):
    policy = Policy(base=1.0, cap=4.0)  # FAST, and the default free budget (5)
    urls = [web.url("one"), web.url("two")]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: sign_in(urls[i % 2], staff, WRONG, _address()),
                                range(40)))
    elapsed = time.monotonic() - started
    outcomes = [outcome(r) for r in answers]
    checked = outcomes.count("checked")
    assert checked + outcomes.count("delayed") == 40
    # the documented limit: 5, then one more each time a delay (1 s, 2 s, 4 s ...) ran out
    assert policy.free <= checked <= policy.guesses_allowed(elapsed), (checked, elapsed)
    assert failed_checks(web, staff) == checked  # what the servers really checked

    # the real user, right password: refused inside the delay, let in after it
    r = sign_in(urls[0], staff, PASSWORD)
    if outcome(r) == "delayed":
        time.sleep(int(r.headers["Retry-After"]))
        r = sign_in(urls[1], staff, PASSWORD)
    assert outcome(r) == "signed in"
    assert failed_checks(web, staff) == checked  # the right password was not counted


def test_a_restart_keeps_the_count(web, staff, redis_server):
    url = web.url("one")
    assert [outcome(sign_in(url, staff, WRONG)) for _ in range(5)] == ["checked"] * 5
    web.stop("one")
    web.stop("two")  # no process remembers anything now
    url = web.start("one", **SLOW)
    try:
        r = sign_in(url, staff, WRONG)
        if outcome(r) == "delayed":  # the 1 s after the fifth failure
            time.sleep(int(r.headers["Retry-After"]))
            r = sign_in(url, staff, WRONG)
        assert outcome(r) == "checked"  # the sixth failure: 2 x 600 s to wait now
        r = sign_in(url, staff, PASSWORD)
        assert outcome(r) == "delayed"
        assert int(r.headers["Retry-After"]) > 600
        assert "Try again in 20 minutes" in r.text
        store = redis.Redis.from_url(redis_server.url)
        try:
            assert int(store.hget(f"{KEY_PREFIX}:acct:{account(web, staff)}", "failures")) == 6
            assert not any(staff.encode() in k for k in store.keys(f"{KEY_PREFIX}*"))
        finally:
            store.close()
    finally:
        web.stop("one")
        web.start("one")
        web.start("two")


@pytest.fixture
def slow(web):
    """Process "one" restarted with a long delay, so nothing here races it."""
    web.stop("one")
    url = web.start("one", **SLOW)
    yield url
    web.stop("one")
    web.start("one")


def test_a_successful_sign_in_starts_the_count_again(slow, staff):
    assert [outcome(sign_in(slow, staff, WRONG)) for _ in range(4)] == ["checked"] * 4
    assert outcome(sign_in(slow, staff, PASSWORD)) == "signed in"
    # five free failures again, then the delay, whatever the password
    assert [outcome(sign_in(slow, staff, WRONG)) for _ in range(5)] == ["checked"] * 5
    assert outcome(sign_in(slow, staff, PASSWORD)) == "delayed"


def test_failures_from_elsewhere_do_not_slow_a_browser_that_signed_in_before(slow, staff):
    home = _address()
    mine = requests.Session()
    assert outcome(sign_in(slow, staff, PASSWORD, home, mine)) == "signed in"
    assert mine.post(slow + "/logout", headers={"X-Forwarded-For": home},
                     data={"csrf_token": re.search(
                         r'name="csrf_token" value="([^"]+)"',
                         mine.get(slow + "/", headers={"X-Forwarded-For": home}).text).group(1)},
                     allow_redirects=False).status_code == 302
    outcomes = [outcome(sign_in(slow, staff, WRONG)) for _ in range(8)]
    assert outcomes == ["checked"] * 5 + ["delayed"] * 3
    assert outcome(sign_in(slow, staff, PASSWORD)) == "delayed"  # a new browser waits
    assert outcome(sign_in(slow, staff, PASSWORD, home, mine)) == "signed in"  # the user's does not


def test_one_address_spraying_many_accounts_is_slowed(slow, web):
    sprayer = _address()
    emails = [f"nobody-{i}-{uuid.uuid4().hex[:6]}@clinic.example" for i in range(21)]
    outcomes = [outcome(sign_in(slow, e, WRONG, sprayer)) for e in emails]
    assert outcomes == ["checked"] * 20 + ["delayed"]  # 20 free failures per address
    fresh = f"nobody-{uuid.uuid4().hex[:6]}@clinic.example"
    assert outcome(sign_in(slow, fresh, WRONG)) == "checked"  # other addresses are not slowed


def test_while_redis_is_down_failures_count_in_memory(web, staff, redis_server, caplog):
    """Neither fail open nor fail the request: this process counts on its own."""
    from refflow.app import create_app

    app = create_app(web.settings.with_overrides(login_delay_base_seconds=600), {"TESTING": True})
    client = app.test_client()

    def post(password):
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return client.post("/login", data={"email": staff, "password": password,
                                           "csrf_token": token})

    assert post(WRONG).status_code == 401  # counted in Redis
    redis_server.stop()
    try:
        with caplog.at_level("WARNING", logger="refflow.signin"):
            statuses = [post(WRONG).status_code for _ in range(5)]
            last = post(PASSWORD)
        assert statuses == [401] * 5 and last.status_code == 429  # 5 in memory, then the delay
        assert any("Redis unavailable" in r.getMessage() for r in caplog.records)
        assert app.extensions["refflow.signin_throttle"].storage == "memory"
    finally:
        redis_server.start()


def test_the_documented_limit():
    policy = Policy()  # the defaults: 5 free, then 1 s doubling to 15 minutes
    assert [policy.delay(n) for n in (1, 4, 5, 6, 7, 14, 15, 40)] == [0, 0, 1, 2, 4, 512, 900, 900]
    assert [policy.guesses_allowed(t) for t in (0, 0.9, 1, 3, 7, 3600)] == [5, 5, 6, 7, 8, 17]
