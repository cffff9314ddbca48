from django.db import migrations


def forwards(apps, schema_editor):
    from loyalty.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [("portal", "0003_member_password")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
