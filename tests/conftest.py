"""Fixtures live in tests/fix_db.py and tests/fix_server.py (loaded as plugins)."""
