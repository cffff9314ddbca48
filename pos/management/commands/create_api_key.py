from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from loyalty.models import Partner, PointOfSale
from pos.services import api_key_create


class Command(BaseCommand):
    help = "Issue a point-of-sale API key for a partner (or one of its points of sale) and print it once."

    def add_arguments(self, parser):
        parser.add_argument("--partner", required=True, help="Partner code.")
        parser.add_argument("--point-of-sale", default="", help="Limit the key to this point of sale (code).")
        parser.add_argument("--name", default="Tills", help="What the key is for.")

    def handle(self, *args, partner, point_of_sale, name, **options):
        found = Partner.objects.filter(code=partner).first()
        if found is None:
            raise CommandError(_("No partner %(code)s.") % {"code": partner})
        pos = None
        if point_of_sale:
            pos = PointOfSale.objects.filter(code=point_of_sale).first()
            if pos is None:
                raise CommandError(_("No point of sale %(code)s.") % {"code": point_of_sale})
        try:
            issued = api_key_create(name=name, partner=found, point_of_sale=pos)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(_("API key (shown once; send it as 'Authorization: Api-Key <key>'):"))
        self.stdout.write(issued.token)
