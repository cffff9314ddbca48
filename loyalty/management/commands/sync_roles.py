from django.core.management.base import BaseCommand

from loyalty.roles import roles_sync


class Command(BaseCommand):
    help = "Create the back-office role groups and set their permissions to the role rules."

    def handle(self, *args, **options):
        for role, count in roles_sync().items():
            self.stdout.write(f"{role}: {count} permission(s)")
