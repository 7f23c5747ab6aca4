"""Cron: five-field expressions (expressions) and the ticker role (ticker)."""
