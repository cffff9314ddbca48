from django.core.management.base import BaseCommand

from loyalty.services import ledger


class Command(BaseCommand):
    help = "Make pending bonus lots whose activation time has come available (set-wise)."

    def handle(self, *args, **options):
        done = ledger.bonuses_activate()
        self.stdout.write(f"Activated {done} lot(s).")
