"""A throwaway PostgreSQL server for tests: the tool's own (``tools/postgres.py``), so that
``./dev cluster`` and the benchmarks need nothing of the tests."""

from tools.postgres import TempPostgres, server_bin

__all__ = ["TempPostgres", "server_bin"]
