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
