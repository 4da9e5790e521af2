"""The predictions database: engines, tables, Alembic migrations, and the writes of one publish."""
