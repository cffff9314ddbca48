from django.core.management.base import BaseCommand
from django.db import transaction

from communications.models import Chain, ChainStatus
from communications.recipes import chain_from_recipe, recipes
from communications.services.chains import chain_activate

ACTIVE_RECIPE = "welcome_no_purchase"


class Command(BaseCommand):
    help = (
        "A chain from each recipe for the demo program, as drafts, with the registration example "
        "active (idempotent: a recipe that already has a chain is skipped)."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        created = 0
        for key in recipes:
            chain = Chain.objects.filter(recipe=key).order_by("pk").first()
            if chain is None:
                chain = chain_from_recipe(key)
                created += 1
            if key == ACTIVE_RECIPE and chain.status == ChainStatus.DRAFT:
                chain_activate(chain=chain)
        self.stdout.write(f"chains: {created} created, {len(recipes) - created} already there")
