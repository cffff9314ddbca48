"""Index migrations of tables the program writes while it runs (the member event journal,
the offer applications) do not block writes on PostgreSQL and run plainly elsewhere."""

import io

from django.core.management import call_command
from django.db import connection


def test_the_event_index_is_built_and_dropped_concurrently_on_postgresql_only(transactional_db):
    out = io.StringIO()
    call_command("sqlmigrate", "loyalty", "0010", stdout=out)
    sql = out.getvalue()
    assert "CREATE INDEX" in sql and '"event_member_type_time_idx"' in sql
    assert "DROP INDEX" in sql and '"event_member_time_idx"' in sql
    concurrently = connection.vendor == "postgresql"
    assert ("CREATE INDEX CONCURRENTLY" in sql) is concurrently
    assert ("DROP INDEX CONCURRENTLY" in sql) is concurrently

    backwards = io.StringIO()
    call_command("sqlmigrate", "loyalty", "0010", backwards=True, stdout=backwards)
    assert '"event_member_time_idx"' in backwards.getvalue()
    assert ("CONCURRENTLY" in backwards.getvalue()) is concurrently


def test_the_offer_applications_index_is_dropped_concurrently_on_postgresql_only(transactional_db):
    out = io.StringIO()
    call_command("sqlmigrate", "offers", "0010", stdout=out)
    sql = out.getvalue()
    assert "DROP INDEX" in sql and '"offer_application_at"' in sql
    concurrently = connection.vendor == "postgresql"
    assert ("DROP INDEX CONCURRENTLY" in sql) is concurrently

    backwards = io.StringIO()
    call_command("sqlmigrate", "offers", "0010", backwards=True, stdout=backwards)
    assert "CREATE INDEX" in backwards.getvalue() and '"offer_application_at"' in backwards.getvalue()
