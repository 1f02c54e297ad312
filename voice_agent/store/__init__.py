"""Persistence: SQLModel tables, the engine (SQLite or PostgreSQL) and schema migrations."""
