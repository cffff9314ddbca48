from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from loyalty.services import ledger


class Command(BaseCommand):
    help = "Make pending bonus lots whose activation time has come available (set-wise)."

    def handle(self, *args, **options):
        done = ledger.bonuses_activate()
        self.stdout.write(ngettext("Activated %(n)d lot.", "Activated %(n)d lots.", done) % {"n": done})
