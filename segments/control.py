"""Control groups: deterministic hold-outs from a hash of the member id and a salt, so
assignment is reproducible, needs no stored rows and costs nothing per member."""

from decimal import Decimal

from django.db.models import BigIntegerField, ExpressionWrapper, F, Q, Value

from loyalty.models import Member

MULTIPLIER = 2654435761  # Knuth's multiplicative hash constant
PRIME = 4294967291  # largest prime below 2**32
BUCKETS = 10_000  # shares are resolved to 0.01 %


def bucket(member_id: int, salt: int) -> int:
    return ((member_id + salt) * MULTIPLIER) % PRIME % BUCKETS


def in_control_group(member_id: int, *, salt: int, share_percent: Decimal | float) -> bool:
    return bucket(member_id, salt) < int(Decimal(str(share_percent)) * 100)


def control_group_q(*, salt: int, share_percent: Decimal | float) -> Q:
    """The same test as ``in_control_group`` as a condition on ``Member``."""
    limit = int(Decimal(str(share_percent)) * 100)
    if limit <= 0:
        return Q(pk__in=[])

    # Plain integer arithmetic (Django's Mod() goes through numeric on PostgreSQL).
    # Constants typed as bigint: as plain ints they are sent as int4 and overflow.
    def big(n: int) -> Value:
        return Value(n, output_field=BigIntegerField())

    expression = ExpressionWrapper(
        ((F("id") + big(salt)) * big(MULTIPLIER)) % big(PRIME) % big(BUCKETS), output_field=BigIntegerField()
    )
    hashed = Member.objects.annotate(cg_bucket=expression).filter(cg_bucket__lt=limit)
    return Q(pk__in=hashed.values("pk"))


def global_control_q() -> Q:
    """Members of the global control group (nobody while it is disabled)."""
    from segments.models import GlobalControlGroup

    group = GlobalControlGroup.current()
    if not group.enabled:
        return Q(pk__in=[])
    return control_group_q(salt=group.salt, share_percent=group.share_percent)


def in_global_control_group(member_id: int) -> bool:
    from segments.models import GlobalControlGroup

    group = GlobalControlGroup.current()
    return group.enabled and in_control_group(member_id, salt=group.salt, share_percent=group.share_percent)
