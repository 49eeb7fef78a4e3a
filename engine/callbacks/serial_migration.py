"""Migration 9: status events and history rows are indexed by their callback's serial
(``engine/callbacks/serials.py`` says why), on SQLite and PostgreSQL alike.

An existing database is converted in place and keeps every row: the callbacks get serials below
any the store will mint (negative, in order of creation), each event and history row takes its
callback's, and the indexes by callback id give way to ``(callback_serial, id)`` plus a partial
``(callback_id, id)`` for rows without a serial (rows whose callback is gone keep NULL and stay
found). A database made today has the columns from migrations 2 and 6 (declared on the tables),
so a column is added only where it is missing. Plain SQL, so this stays what it was when the
table code changes.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

#: (table, column): a callback's serial on its row, and the copy each event and history row carries.
SERIAL_COLUMNS = (("callbacks", "serial"), ("callback_events", "callback_serial"),
                  ("callback_history", "callback_serial"))
#: The indexes by the random callback id this migration replaces.
REPLACED_INDEXES = {"ix_callback_events_callback": "callback_events",
                    "ix_callback_history_callback": "callback_history"}
#: name -> (table, what it indexes).
SERIAL_INDEXES = {
    "ix_callback_events_serial": ("callback_events", "(callback_serial, id) WHERE callback_serial IS NOT NULL"),
    "ix_callback_events_unserialed": ("callback_events", "(callback_id, id) WHERE callback_serial IS NULL"),
    "ix_callback_history_serial": ("callback_history", "(callback_serial, id) WHERE callback_serial IS NOT NULL"),
    "ix_callback_history_unserialed": ("callback_history", "(callback_id, id) WHERE callback_serial IS NULL"),
}

# Serials -1, -2, ... from the newest callback back: below every serial minted later (the store's
# id sequence starts at 1) and still growing with creation time. UPDATE ... FROM: SQLite >= 3.33.
_NUMBER_CALLBACKS = text(
    "UPDATE callbacks SET serial = numbered.serial FROM "
    "(SELECT id, 0 - ROW_NUMBER() OVER (ORDER BY created_at DESC, id DESC) AS serial "
    " FROM callbacks WHERE serial IS NULL) AS numbered "
    "WHERE callbacks.id = numbered.id")


def _copy_serials(table: str) -> str:
    return (f"UPDATE {table} SET callback_serial = callbacks.serial FROM callbacks "
            f"WHERE callbacks.id = {table}.callback_id AND {table}.callback_serial IS NULL")


def migrate(conn: Connection) -> None:
    inspector = inspect(conn)
    present = set(inspector.get_table_names())  # a store opened with some schemas only
    for table, column in SERIAL_COLUMNS:
        if table in present and column not in {c["name"] for c in inspector.get_columns(table)}:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} BIGINT"))
    if "callbacks" not in present:
        return
    conn.execute(_NUMBER_CALLBACKS)
    for table in ("callback_events", "callback_history"):
        if table in present:
            conn.execute(text(_copy_serials(table)))
    for name, table in REPLACED_INDEXES.items():
        if table in present:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    for name, (table, spec) in SERIAL_INDEXES.items():
        if table in present:
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {spec}"))
