import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_production_settings_pass_the_deploy_check(tmp_path):
    # given the production variables
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "k3y-" + "a1B2c3D4e5F6g7H8" * 4,
        "ALLOWED_HOSTS": "loyalty.example.com",
        "VAR_DIR": str(tmp_path),
    }
    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update({"DEBUG": "false", "VAR_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_back_office_speaks_russian_when_asked(admin_client):
    page = admin_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="ru")
    assert "Программа лояльности" in page.content.decode()


def _run(code: str, **env_vars) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env_vars}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.postgres
def test_a_statement_timeout_ends_a_runaway_query():
    # given the web service's limit of one second
    code = (
        "import django; django.setup()\n"
        "from django.db import connection, OperationalError\n"
        "cur = connection.cursor()\n"
        "cur.execute('SHOW statement_timeout'); print(cur.fetchone()[0])\n"
        "try:\n"
        "    cur.execute('SELECT pg_sleep(3)')\n"
        "except OperationalError as exc:\n"
        "    print('cancelled:', 'statement timeout' in str(exc))\n"
    )
    # (on the server's own database: the suite's test database is another session's)
    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    # when a statement runs longer
    result = _run(code, DATABASE_URL=server, DATABASE_STATEMENT_TIMEOUT="1")
    # then PostgreSQL cancels it
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1s", "cancelled:", "True"]


def test_a_statement_timeout_that_is_not_a_number_is_refused_by_name():
    result = _run(
        "import django; django.setup()",
        DATABASE_URL="postgres://nobody@127.0.0.1:5432/none",
        DATABASE_STATEMENT_TIMEOUT="ten",
    )
    assert result.returncode != 0
    assert "DATABASE_STATEMENT_TIMEOUT must be a whole number of seconds, not 'ten'" in result.stderr
