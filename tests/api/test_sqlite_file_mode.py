"""The embedded database holds patient data: only its owner may read it."""

from __future__ import annotations

import os
import stat

from refflow.accounts.practices import create_practice
from refflow.config import load_settings
from refflow.db import database_for, migrate


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_sqlite_database_and_its_wal_files_are_private(tmp_path):
    old_umask = os.umask(0o022)  # the usual umask: new files world-readable
    try:
        settings = load_settings({}, data_dir=tmp_path / "data", secret_key="test")
        db = database_for(settings)
        migrate.upgrade(db)
        with db.session() as session:
            create_practice(session, "Mode Practice", fax="+1 763 555 0198")
        files = [p for p in (tmp_path / "data").iterdir() if p.name.startswith("refflow.db")]
        assert {p.name for p in files} >= {"refflow.db", "refflow.db-wal"}
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
        db.dispose()
    finally:
        os.umask(old_umask)


def test_a_database_file_an_earlier_version_left_readable_is_narrowed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "refflow.db").touch(mode=0o644)
    os.chmod(data / "refflow.db", 0o644)
    settings = load_settings({}, data_dir=data, secret_key="test")
    db = database_for(settings)
    migrate.upgrade(db)
    assert _mode(data / "refflow.db") == 0o600
    db.dispose()
