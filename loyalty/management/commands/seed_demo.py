import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max

from loyalty import demo
from loyalty.models import Member


class Command(BaseCommand):
    help = "Load the demo program: stores, catalog, members with a year of receipts and bonuses."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=3000, help="How many members to add.")
        parser.add_argument("--seed", type=int, default=42, help="Random seed (same seed, same data).")
        parser.add_argument(
            "--history-members",
            type=int,
            default=3000,
            help="How many of the new members get a year of receipts and bonus history.",
        )
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if members already exist.")

    def handle(self, *args, members, seed, history_members, if_empty, **options):
        if members < 0 or history_members < 0:
            raise CommandError("--members and --history-members must not be negative")
        demo.program_setup()
        if if_empty and Member.objects.exists():
            self.stdout.write("Members exist already; demo data left as it is.")
            return
        start_id = (Member.objects.aggregate(m=Max("pk"))["m"] or 0) + 1
        t0 = time.perf_counter()
        loaded = demo.members_load(demo.MemberPlan(count=members, seed=seed, start_id=start_id))
        t1 = time.perf_counter()
        self.stdout.write(f"Loaded {loaded} members with cards and consents in {t1 - t0:.1f} s.")
        history_ids = list(range(start_id, start_id + min(members, history_members)))
        if history_ids:
            counts = demo.history_load(member_ids=history_ids, seed=seed)
            self.stdout.write(
                f"Added {counts['receipts']} receipts for {len(history_ids)} members "
                f"({counts['accrued']} bonuses accrued, {counts['spent']} spent) "
                f"in {time.perf_counter() - t1:.1f} s."
            )
