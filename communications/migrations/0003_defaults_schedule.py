from django.db import migrations


def forwards(apps, schema_editor):
    from loyalty.roles import roles_sync

    roles_sync(apps)
    RegularTask = apps.get_model("communications", "RegularTask")
    for kind, days in (("birthday", 0), ("burnout", 7), ("activation", 1)):
        RegularTask.objects.get_or_create(kind=kind, defaults={"days_before": days})
    UnsubscribeReason = apps.get_model("communications", "UnsubscribeReason")
    if not UnsubscribeReason.objects.exists():
        for order, text in enumerate(
            [
                "I receive too many messages",
                "The messages are not interesting to me",
                "I did not subscribe",
                "I no longer use the program",
                "Other",
            ]
        ):
            UnsubscribeReason.objects.create(text=text, order=order)
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    quarter, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    for name, task, schedule in [
        ("Mailings: start the scheduled ones", "communications.tasks.mailings_start_due", minute),
        ("Chains: advance due members", "communications.tasks.chains_advance", minute),
        ("Regular notifications: birthday, burnout, activation", "communications.tasks.regular_run", quarter),
    ]:
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": schedule})


class Migration(migrations.Migration):
    dependencies = [
        ("communications", "0002_templates_mailings_chains_regular"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
