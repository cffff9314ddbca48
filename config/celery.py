"""The Celery application. Tasks live in each app's ``tasks.py``; periodic entries are
kept in the database (django-celery-beat) and seeded by ``loyalty`` migrations."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("loyalty_back_office")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@worker_process_init.connect
def _freeze_startup_objects(**kwargs) -> None:
    from config.runtime import startup_objects_freeze

    startup_objects_freeze()
