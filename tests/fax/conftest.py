"""The fax lab as fixtures: a private HylaFAX with soft modems (``fax_lab.py``).

One lab per test session and worker, started only when a test asks for it
(about 10 s until the modems are idle). Its names and ports are unique per lab,
so parallel workers could each run one; with ``-n 2 --dist loadfile`` every
test of a module runs in one worker anyway, so today one lab starts per run.
Skips, naming what is missing, when the Debian packages (iaxmodem,
hylafax-server) or root are not there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from refflow.plugins.channels.fax.hylafax import HylafaxClient

# importlib import mode puts no test folder on sys.path; the helper module has
# a distinctive name (fax_lab) so it cannot shadow anything else.
sys.path.insert(0, str(Path(__file__).parent))
from fax_lab import FaxLab, missing_requirements  # noqa: E402


@pytest.fixture(scope="session")
def fax_lab():
    missing = missing_requirements()
    if missing:
        pytest.skip("fax lab unavailable: " + "; ".join(missing))
    lab = FaxLab()
    try:
        lab.start()
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"fax lab did not start: {exc}")
    yield lab
    lab.stop()


@pytest.fixture
def hylafax(fax_lab):
    """A client connected to the lab's hfaxd (closed after the test)."""
    with HylafaxClient.connect("127.0.0.1", fax_lab.port, "refflow-test", timeout=15) as client:
        yield client
