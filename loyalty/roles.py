"""Back-office roles: Django groups with the permissions each role needs.

The rules below are patterns over app labels and model names, resolved against whatever
models exist when ``roles_sync`` runs. A migration runs it (so a fresh database has the
groups), later apps' migrations run it again for their new models, and
``manage.py sync_roles`` re-applies it by hand.
"""

from django.utils.translation import gettext_lazy as _

ADMINISTRATOR = "Administrator"
MARKETER = "Marketer"
ANALYST = "Analyst"
DESIGNER = "Designer"
OPERATOR = "Contact-center operator"
API_USER = "API user"

ROLE_LABELS = {
    ADMINISTRATOR: _("Administrator"),
    MARKETER: _("Marketer"),
    ANALYST: _("Analyst"),
    DESIGNER: _("Designer"),
    OPERATOR: _("Contact-center operator"),
    API_USER: _("API user"),
}

PRODUCT_APPS = ("loyalty", "segments", "gateways", "communications", "offers", "pos", "portal")
ALL = ("view", "add", "change", "delete")

# role -> list of (app_label, model name or "*", actions or extra codenames)
ROLE_RULES: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    ADMINISTRATOR: [
        *[(app, "*", ALL) for app in PRODUCT_APPS],
        ("auth", "user", ALL),
        ("auth", "group", ("view",)),
        ("authtoken", "*", ALL),
        ("django_celery_beat", "*", ALL),
        ("loyalty", "member", ("adjust_bonuses",)),
    ],
    ANALYST: [(app, "*", ("view",)) for app in PRODUCT_APPS],
    MARKETER: [
        ("loyalty", "*", ("view",)),
        ("gateways", "*", ALL),
        ("segments", "*", ALL),
        ("communications", "*", ALL),
        ("offers", "*", ALL),
        ("portal", "targetedcontent", ALL),
    ],
    DESIGNER: [
        ("communications", "*template*", ALL),
        ("portal", "targetedcontent", ALL),
        # to pick a material's audience and advertised offer
        ("segments", "targetaudience", ("view",)),
        ("offers", "offer", ("view",)),
    ],
    OPERATOR: [
        *[
            ("loyalty", model, ("view",))
            for model in (
                "member",
                "card",
                "consent",
                "consentchange",
                "statuschange",
                "receipt",
                "receiptline",
                "receiptpayment",
                "bonusaccount",
                "bonusoperation",
                "ledgerentry",
                "memberevent",
                "status",
                "currency",
                "pointofsale",
                # linked from the point of sale and receipt pages
                "partner",
                "paymentmethod",
            )
        ],
        ("loyalty", "member", ("adjust_bonuses",)),
        ("communications", "*feedback*", ("view", "change")),
    ],
    API_USER: [],
}

STAFF_ROLES = {ADMINISTRATOR, MARKETER, ANALYST, DESIGNER, OPERATOR}


def _matches(pattern: str, model: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(model, pattern)


def roles_sync(apps=None) -> dict[str, int]:
    """Create the role groups and set each one's permissions to exactly what the rules
    grant. Works with a migration's historical ``apps`` or the live registry."""
    if apps is None:
        from django.apps import apps as live_apps

        apps = live_apps
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate finishes; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = getattr(app_config, "models_module", None) or True
        create_permissions(app_config, apps=apps, verbosity=0)

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = list(Permission.objects.select_related("content_type"))
    counts = {}
    for role, rules in ROLE_RULES.items():
        group, _created = Group.objects.get_or_create(name=role)
        chosen = []
        for perm in permissions:
            app_label, model = perm.content_type.app_label, perm.content_type.model
            action = perm.codename.removesuffix(f"_{model}")
            for rule_app, rule_model, actions in rules:
                if (
                    rule_app == app_label
                    and _matches(rule_model, model)
                    and (action in actions or perm.codename in actions)
                ):
                    chosen.append(perm)
                    break
        group.permissions.set(chosen)
        counts[role] = len(chosen)
    return counts
