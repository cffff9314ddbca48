from django.core.management.base import BaseCommand

from segments.models import Segment, TargetAudience
from segments.services import audience_fill_from_segment, segment_materialise

EXAMPLES = [
    (
        "Women 25–45 who bought coffee in the last 30 days",
        {
            "op": "and",
            "items": [
                {"metric": "gender", "operator": "in", "value": ["female"]},
                {"metric": "age", "operator": "between", "value": [25, 45]},
                {
                    "metric": "bought_product_group",
                    "operator": "in",
                    "value": ["coffee-tea"],
                    "params": {"period": {"last_days": 30}},
                },
            ],
        },
    ),
    (
        "At risk with a balance to spend",
        {
            "op": "and",
            "items": [
                {"metric": "rfm_segment", "operator": "in", "value": ["at_risk", "cant_lose"]},
                {"metric": "bonus_balance", "operator": "gte", "value": 100},
                {"metric": "consent", "operator": "eq", "value": True, "params": {"channel": "sms"}},
            ],
        },
    ),
]


class Command(BaseCommand):
    help = "Example segments and a target audience for the demo program (only if there are no segments)."

    def handle(self, *args, **options):
        if Segment.objects.exists():
            self.stdout.write("Segments exist already; nothing added.")
            return
        for name, rule in EXAMPLES:
            segment = Segment.objects.create(name=name, rule=rule)
            result = segment_materialise(segment)
            self.stdout.write(f"{name}: {result.members} members")
        audience = TargetAudience.objects.create(name="Coffee lovers (from a segment)")
        added = audience_fill_from_segment(audience, Segment.objects.get(name=EXAMPLES[0][0]))
        self.stdout.write(f"{audience.name}: {added} members")
