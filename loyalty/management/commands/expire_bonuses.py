from django.core.management.base import BaseCommand

from loyalty.services import ledger


class Command(BaseCommand):
    help = "Burn what is left of bonus lots whose expiry time has come (set-wise)."

    def handle(self, *args, **options):
        done = ledger.bonuses_expire()
        self.stdout.write(f"Expired {done} lot(s).")
