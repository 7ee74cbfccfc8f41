"""documents and received faxes keep their bytes in the document store, not in the database

``documents.store_key`` and ``received_faxes.store_key`` name the blob in the
store (``refflow.db.blobstore``; ``REFFLOW_DOCUMENT_STORE``); ``content`` becomes
nullable: new rows leave it empty, rows written before keep their bytes there
and are read from it (``refflow documents migrate`` moves them into the store).
``documents.purged_at``: the retention period deleted the document's bytes; its
row stays.

The upgrade moves no bytes: a migration does not read the app's settings, so
it cannot know the store. The downgrade restores NOT NULL and therefore stops
when a row has its bytes in the store only (it cannot fetch them either).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.alter_column("content", existing_type=sa.LargeBinary(), nullable=True)
        batch.add_column(sa.Column("store_key", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("received_faxes") as batch:
        batch.alter_column("content", existing_type=sa.LargeBinary(), nullable=True)
        batch.add_column(sa.Column("store_key", sa.String(length=200), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    for table in ("documents", "received_faxes"):
        if bind.execute(sa.text(f"SELECT 1 FROM {table} WHERE content IS NULL LIMIT 1")).first():
            raise RuntimeError(f"{table}: some rows have their bytes in the document store "
                               "only; a downgrade below 0012 would lose them")
    with op.batch_alter_table("received_faxes") as batch:
        batch.drop_column("store_key")
        batch.alter_column("content", existing_type=sa.LargeBinary(), nullable=False)
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("store_key")
        batch.alter_column("content", existing_type=sa.LargeBinary(), nullable=False)
