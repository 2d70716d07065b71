"""JWT replay cache shared by all replicas; override reason system/code as unbounded text.

A client may send an override-reason code or system of any length; on PostgreSQL a VARCHAR(128)
would refuse it with an error that is the client's doing, so both become TEXT.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jwt_replay",
        # sha256 of issuer and jti: the cache needs equality only, never the token's identifiers.
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_jwt_replay_expires_at", "jwt_replay", ["expires_at"])
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite never enforced the lengths; copying the table would change nothing
    op.alter_column("feedback", "override_system", type_=sa.Text(), existing_type=sa.String(256))
    op.alter_column("feedback", "override_code", type_=sa.Text(), existing_type=sa.String(128))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("feedback", "override_code", type_=sa.String(128), existing_type=sa.Text())
        op.alter_column("feedback", "override_system", type_=sa.String(256), existing_type=sa.Text())
    op.drop_index("ix_jwt_replay_expires_at", table_name="jwt_replay")
    op.drop_table("jwt_replay")
