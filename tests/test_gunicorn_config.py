"""The web server's production settings (``config/gunicorn.conf.py``), as gunicorn
itself reads them."""

from pathlib import Path

import pytest
from gunicorn.app.wsgiapp import WSGIApplication

CONFIG = Path(__file__).resolve().parent.parent / "config" / "gunicorn.conf.py"


def _load(monkeypatch, **env):
    for name in ("WEB_CONCURRENCY", "GUNICORN_BIND", "GUNICORN_TIMEOUT", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.argv", ["gunicorn", "config.wsgi:application"])
    app = WSGIApplication()
    app.load_default_config()
    app.load_config_from_file(str(CONFIG))
    return app.cfg


def test_workers_are_synchronous_so_a_busy_one_takes_no_new_connection(monkeypatch):
    cfg = _load(monkeypatch)
    assert cfg.worker_class_str == "sync"
    assert cfg.preload_app  # workers forked from a loaded master share its memory
    assert cfg.workers >= 3  # two per core and one
    assert cfg.bind == ["0.0.0.0:8000"]
    assert cfg.timeout == 600
    assert cfg.forwarded_allow_ips == ["127.0.0.1", "::1"]  # only a proxy beside it


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"WEB_CONCURRENCY": "5"}, "workers", 5),
        ({"GUNICORN_BIND": "127.0.0.1:9000"}, "bind", ["127.0.0.1:9000"]),
        ({"GUNICORN_TIMEOUT": "45"}, "timeout", 45),
        ({"FORWARDED_ALLOW_IPS": "*"}, "forwarded_allow_ips", ["*"]),
    ],
)
def test_the_environment_sets_workers_address_and_timeout(monkeypatch, env, field, expected):
    assert getattr(_load(monkeypatch, **env), field) == expected


@pytest.mark.parametrize("value", ["ten", "0", "-3", "1.5"])
def test_a_bad_timeout_stops_the_server_naming_the_variable(monkeypatch, value):
    # (a WEB_CONCURRENCY gunicorn cannot read stops gunicorn itself, before its settings)
    with pytest.raises(
        SystemExit, match=f"GUNICORN_TIMEOUT must be a whole number of at least 1, not '{value}'"
    ):
        _load(monkeypatch, GUNICORN_TIMEOUT=value)


def _compose_environment(service: str, given: dict[str, str]) -> dict[str, str]:
    """The service's environment as docker compose would pass it: ``${NAME:-default}``
    and ``${NAME:?message}`` filled from ``given``."""
    import re

    import yaml

    compose = yaml.safe_load((CONFIG.parent.parent / "docker-compose.yml").read_text())

    def fill(value) -> str:
        def one(match):
            name, default = match.group(1), match.group(3) or ""
            return given.get(name) or default

        return re.sub(r"\$\{(\w+)(:-([^}]*)|:\?[^}]*)?\}", one, str(value))

    return {name: fill(value) for name, value in compose["services"][service]["environment"].items()}


def test_the_compose_web_service_gets_settings_gunicorn_can_start_with():
    import subprocess
    import sys

    env = _compose_environment("web", {"SECRET_KEY": "compose-check-" + "x" * 50})
    env = {**env, "PATH": "/usr/bin:/bin", "VAR_DIR": str(CONFIG.parent.parent / "var")}
    checked = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "--check-config", "config.wsgi:application"],
        cwd=CONFIG.parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr[-2000:]


def _probe_passes(probe: str, **env: str) -> None:
    """Run ``probe`` in a fresh Python process of the project, as a web process starts."""
    import os
    import subprocess
    import sys

    checked = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=CONFIG.parent.parent,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr[-2000:]


def test_loading_the_application_opens_no_connection_and_no_thread():
    """What ``preload_app`` forks must hold no database connection, socket or thread:
    the workers would share them."""
    probe = (
        "import threading, config.wsgi\n"
        "from django.db import connections\n"
        "assert all(connections[a].connection is None for a in connections), 'a database connection'\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    _probe_passes(probe)


def test_a_web_process_collects_the_previous_requests_garbage_as_the_next_starts():
    """Requests leave their garbage in cycles; the web process collects it as the next
    request starts (a little each time, not a long pause every hundred requests), and
    its older generations every hundred requests."""
    probe = (
        "import gc, io, weakref, config.wsgi\n"
        "from config.runtime import OLDER_GENERATIONS_EVERY\n"
        "def call():\n"
        "    environ = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/api/v1/no-such-thing',\n"
        "               'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '80', 'HTTP_HOST': '127.0.0.1',\n"
        "               'wsgi.url_scheme': 'https',\n"
        "               'wsgi.input': io.BytesIO(), 'wsgi.errors': io.StringIO()}\n"
        "    response = config.wsgi.application(environ, lambda status, headers: None)\n"
        "    b''.join(response); response.close()\n"
        "class Node: pass\n"
        "node = Node(); node.me = node; gone = weakref.ref(node); del node  # garbage in a cycle\n"
        "assert gc.get_threshold()[0] > 1000 and gone() is not None  # the collector left it\n"
        "call()\n"
        "assert gone() is None, 'the cycle outlived the next request'\n"
        "generations = []\n"
        "def seen(phase, info):\n"
        "    if phase == 'start': generations.append(info['generation'])\n"
        "gc.callbacks.append(seen)\n"
        "for _ in range(2 * OLDER_GENERATIONS_EVERY): call()\n"
        "assert generations.count(0) >= OLDER_GENERATIONS_EVERY, generations\n"
        "assert 1 <= generations.count(1) <= 3, generations\n"
    )
    _probe_passes(probe, ALLOWED_HOSTS="127.0.0.1")
