from django.db import migrations


def forwards(apps, schema_editor):
    from loyalty.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("communications", "0004_feedback"),
        ("offers", "0004_personal_products_program"),
        ("loyalty", "0003_status_qualifying_total"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
