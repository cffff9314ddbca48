from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from loyalty.roles import roles_sync


class Command(BaseCommand):
    help = "Create the back-office role groups and set their permissions to the role rules."

    def handle(self, *args, **options):
        for role, count in roles_sync().items():
            self.stdout.write(
                ngettext("%(role)s: %(n)d permission", "%(role)s: %(n)d permissions", count)
                % {"role": role, "n": count}
            )
