"""Fixtures for the received-fax tests: the sample fax generator of the
benchmark (``bench/faxed_forms.py``) on ``sys.path``, and the clinic whose
form it fills in.

importlib import mode puts no test folder on sys.path; ``faxed_forms`` has a
distinctive name, so it cannot shadow anything else.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


@pytest.fixture(scope="session")
def faxed_forms():
    """The sample fax generator (bench/faxed_forms.py)."""
    import faxed_forms

    return faxed_forms
