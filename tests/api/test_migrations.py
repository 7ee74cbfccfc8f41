"""Migrations bring an empty database to head, and match the models exactly."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from refflow.db import migrate
from refflow.db.models import Base


def test_database_is_at_head_and_models_match_migrations(db):
    assert migrate.current_revision(db) == migrate.head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
    assert diff == []


def test_upgrade_twice_is_harmless(db):
    migrate.upgrade(db)
    assert migrate.at_head(db)


def test_cli_upgrades_an_empty_sqlite_file(tmp_path):
    env = {"REFFLOW_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "refflow", "db", "upgrade"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "database at revision" in out.stdout
    assert (tmp_path / "refflow.db").exists()
