"""Index operations for tables the program writes while it runs (the member event
journal): on PostgreSQL the index is built and dropped ``CONCURRENTLY``, so tills and
workers keep writing while a migration builds it over millions of rows; other databases
build it the plain way. A migration using them sets ``atomic = False``."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations


class _ConcurrentlyOnPostgres:
    plain: type[migrations.AddIndex] | type[migrations.RemoveIndex]  # what other databases run

    def _step(self, schema_editor, name: str):
        if schema_editor.connection.vendor == "postgresql":
            return getattr(super(), name)
        return getattr(self.plain, name).__get__(self)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        return self._step(schema_editor, "database_forwards")(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        return self._step(schema_editor, "database_backwards")(app_label, schema_editor, from_state, to_state)


class AddIndexOnline(_ConcurrentlyOnPostgres, AddIndexConcurrently):
    plain = migrations.AddIndex


class RemoveIndexOnline(_ConcurrentlyOnPostgres, RemoveIndexConcurrently):
    plain = migrations.RemoveIndex
