"""Index operations for tables the program writes while it runs (the member event
journal): on PostgreSQL the index is built and dropped ``CONCURRENTLY``, so tills and
workers keep writing while a migration builds it over millions of rows; other databases
build it the plain way. A migration using them sets ``atomic = False``. Also the seeding
of a periodic task, which several apps' migrations do alike."""

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


def interval_task_seeder(*, name: str, task: str, every: int, period: str = "minutes"):
    """A migration's forwards and backwards functions that add (and remove) a periodic
    task running ``task`` every ``every`` ``period`` (editable in the admin afterwards)."""

    def forwards(apps, schema_editor):
        IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": schedule})

    def backwards(apps, schema_editor):
        apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=task).delete()

    return forwards, backwards
