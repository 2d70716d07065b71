"""Alembic migrations for the issued-card log, feedback and the JWT replay cache (see service.store.migrate)."""
