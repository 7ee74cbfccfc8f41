"""documents.content stored out of line without compression (PostgreSQL)

PDFs and Group 3 fax images are compressed already: PostgreSQL's pglz tried
each one and kept it as it was (stored size = raw size), at about 9 ms of
server CPU per referral's three documents (1.5 ms without the attempt).
``STORAGE EXTERNAL`` skips the attempt; rows already stored are left as they
are. SQLite has no such setting.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE documents ALTER COLUMN content SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE documents ALTER COLUMN content SET STORAGE EXTENDED")
