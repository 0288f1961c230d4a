"""The history store and the reports on a real PostgreSQL (tests/fixtures/postgres.py)."""
