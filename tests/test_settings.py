import os
import subprocess
import sys
from pathlib import Path

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
