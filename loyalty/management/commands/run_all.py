"""Web server, Celery worker and beat together, for the embedded default (``make run``)."""

import os
import signal
import subprocess
import sys

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from loyalty.demo import DEMO_USERS, demo_password


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Start the web server, a Celery worker and beat in one go; Ctrl+C stops all."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, host, port, **options):
        if "filesystem" in settings.CELERY_BROKER_URL:
            for key in ("data_folder_in", "processed_folder"):
                os.makedirs(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key], exist_ok=True)
        settings.OUTBOX_DIR.mkdir(parents=True, exist_ok=True)
        beat_schedule = settings.VAR_DIR / "celerybeat-schedule"
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-B",
                "--loglevel=INFO",
                "--concurrency=2",
                "-s",
                str(beat_schedule),
            ],
        )
        url = f"http://{host}:{port}/admin/"
        self.stdout.write(self.style.SUCCESS("\n" + _("Back office: %(url)s") % {"url": url}))
        self.stdout.write(_("API docs: %(url)s") % {"url": f"http://{host}:{port}/api/docs/"})
        if apps.is_installed("portal"):
            self.stdout.write(
                _(
                    "Personal account: %(url)s (demo member: %(phone)s; the sign-in code arrives in "
                    "%(folder)s)"
                )
                % {
                    "url": f"http://{host}:{port}/account/",
                    "phone": "+7 900 000-00-01",
                    "folder": f"{settings.OUTBOX_DIR}/sms/",
                }
            )
        self.stdout.write(_("Logins (user / password / role):"))
        for username, role, _is_superuser in DEMO_USERS:
            self.stdout.write(f"  {username:<10} {demo_password(username):<16} {role}")
        self.stdout.write(
            _("Outgoing mail and messages are written to %(folder)s") % {"folder": settings.OUTBOX_DIR} + "\n"
        )
        # Stopped with SIGTERM (kill, a service manager) as with Ctrl+C: the worker is
        # stopped below instead of being left running on its own.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            call_command("runserver", f"{host}:{port}", use_reloader=False)
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
