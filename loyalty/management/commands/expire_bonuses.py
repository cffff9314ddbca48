from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from loyalty.services import ledger


class Command(BaseCommand):
    help = "Burn what is left of bonus lots whose expiry time has come (set-wise)."

    def handle(self, *args, **options):
        done = ledger.bonuses_expire()
        self.stdout.write(ngettext("Expired %(n)d lot.", "Expired %(n)d lots.", done) % {"n": done})
