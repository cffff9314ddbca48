"""Ready-made chains a marketer starts from: the classic event communications, each a
turn-on and a turn-off event, a few steps and placeholder SMS templates to edit.

``welcome_no_purchase`` is the registration example: a member who makes no purchase
within two weeks of registering gets an invitation, and one more two weeks later if they
still have not bought. A purchase in the first two weeks postpones the invitation to two
weeks after that purchase (the first step waits for fourteen days *without a purchase*,
counting again from each purchase); a purchase after the invitation means no second
message (the condition looks at the last fourteen days).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from communications.models import Chain, MessageTemplate, Reentry
from communications.services.chains import chain_save


@dataclass(frozen=True)
class StepSpec:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    name: str | Promise = ""
    text: str | Promise = ""  # a send step's SMS text: becomes its template


@dataclass(frozen=True)
class Recipe:
    key: str
    label: str | Promise
    description: str | Promise
    turn_on: str
    turn_off: tuple[str, ...]
    steps: tuple[StepSpec, ...]
    reentry: str = Reentry.ONCE
    reentry_days: int | None = None


def _send(name, text) -> StepSpec:
    return StepSpec("send", {"purpose": "marketing", "expires_hours": 48}, name, text)


recipes: dict[str, Recipe] = {
    r.key: r
    for r in [
        Recipe(
            key="welcome_no_purchase",
            label=gettext_lazy("Registered but not buying"),
            description=gettext_lazy(
                "No purchase within two weeks of registering: an invitation to the stores; still none "
                "two weeks later: a second message. A purchase in the first two weeks postpones the "
                "invitation to two weeks after it."
            ),
            turn_on="registration_completed",
            turn_off=(),
            steps=(
                StepSpec("wait_no_purchase", {"days": 14}, gettext_lazy("Two weeks without a purchase")),
                _send(
                    gettext_lazy("Invitation"),
                    gettext_lazy(
                        "{{ first_name }}, welcome to the club! Come to our stores: your card is ready "
                        "and bonuses are waiting for your first purchase."
                    ),
                ),
                StepSpec("wait", {"days": 14}, gettext_lazy("Two weeks")),
                StepSpec(
                    "condition",
                    {"test": "no_purchase", "days": 14, "on_false": "exit"},
                    gettext_lazy("Still no purchase"),
                ),
                _send(
                    gettext_lazy("Second invitation"),
                    gettext_lazy(
                        "{{ first_name }}, we still have not met in our stores. Drop in this week: new "
                        "offers are waiting for you."
                    ),
                ),
            ),
        ),
        Recipe(
            key="first_purchase_no_visit",
            label=gettext_lazy("First purchase, then no visit for two weeks"),
            description=gettext_lazy(
                "After a member's first purchase: if they do not come back within two weeks, a message. "
                "The next purchase ends it."
            ),
            turn_on="purchase_completed",
            turn_off=("purchase_completed",),
            steps=(
                StepSpec(
                    "condition",
                    {"test": "first_purchase", "on_false": "exit"},
                    gettext_lazy("It was the first purchase"),
                ),
                StepSpec("wait", {"days": 14}, gettext_lazy("Two weeks")),
                _send(
                    gettext_lazy("Come back"),
                    gettext_lazy(
                        "{{ first_name }}, thank you for your first purchase! We miss you: come again, you "
                        "have {{ balance }} bonuses."
                    ),
                ),
            ),
        ),
        Recipe(
            key="phone_no_questionnaire",
            label=gettext_lazy("Phone bound, questionnaire not filled"),
            description=gettext_lazy(
                "A member bound their phone but did not fill in the questionnaire: a reminder after "
                "three days. Filling it in ends it."
            ),
            turn_on="phone_bound",
            turn_off=("questionnaire_filled",),
            steps=(
                StepSpec("wait", {"days": 3}, gettext_lazy("Three days")),
                _send(
                    gettext_lazy("Fill in the questionnaire"),
                    gettext_lazy(
                        "{{ first_name }}, tell us a little about yourself in the questionnaire and get "
                        "offers that suit you."
                    ),
                ),
            ),
        ),
        Recipe(
            key="bonuses_unspent",
            label=gettext_lazy("Bonuses not spent"),
            description=gettext_lazy(
                "A member buys but does not pay with bonuses: a reminder of the balance a month after the "
                "purchase. Paying with bonuses ends it; it can start again a month later."
            ),
            turn_on="purchase_completed",
            turn_off=("bonus_paid",),
            reentry=Reentry.AFTER_EXIT,
            reentry_days=30,
            steps=(
                StepSpec("wait", {"days": 30}, gettext_lazy("A month")),
                _send(
                    gettext_lazy("Spend your bonuses"),
                    gettext_lazy(
                        "{{ first_name }}, you have {{ balance }} bonuses. Pay with them for up to half of "
                        "your next purchase!"
                    ),
                ),
            ),
        ),
        Recipe(
            key="social_inactive",
            label=gettext_lazy("Social profile linked, no social activity"),
            description=gettext_lazy(
                "A member linked a social network profile but takes no part in our social mechanics: an "
                "invitation after a week. Any social activity ends it."
            ),
            turn_on="social_profile_linked",
            turn_off=("social_activity",),
            steps=(
                StepSpec("wait", {"days": 7}, gettext_lazy("A week")),
                _send(
                    gettext_lazy("Join in"),
                    gettext_lazy(
                        "{{ first_name }}, join our community: like, share and take part in contests for "
                        "bonuses."
                    ),
                ),
            ),
        ),
        Recipe(
            key="no_referrals",
            label=gettext_lazy("Registered, invited no friends"),
            description=gettext_lazy(
                "A member registered but invited nobody: their referral code after a week, a reminder two "
                "weeks later. Inviting a friend ends it."
            ),
            turn_on="registration_completed",
            turn_off=("friend_invited",),
            steps=(
                StepSpec("wait", {"days": 7}, gettext_lazy("A week")),
                _send(
                    gettext_lazy("Invite friends"),
                    gettext_lazy(
                        "{{ first_name }}, invite friends with your code {{ referral_code }} and get "
                        "bonuses for their purchases."
                    ),
                ),
                StepSpec("wait", {"days": 14}, gettext_lazy("Two weeks")),
                _send(
                    gettext_lazy("Invite friends: reminder"),
                    gettext_lazy(
                        "{{ first_name }}, your code {{ referral_code }} still works: a friend's purchase "
                        "brings you bonuses."
                    ),
                ),
            ),
        ),
        Recipe(
            key="app_no_registration",
            label=gettext_lazy("App installed, registration not finished"),
            description=gettext_lazy(
                "Someone installed the app but did not register: a reminder the next day. Registering "
                "ends it."
            ),
            turn_on="app_installed",
            turn_off=("registration_completed",),
            steps=(
                StepSpec("wait", {"days": 1}, gettext_lazy("A day")),
                _send(
                    gettext_lazy("Finish registration"),
                    gettext_lazy(
                        "You are one step away: finish registering in the app and get welcome bonuses."
                    ),
                ),
            ),
        ),
    ]
}


@transaction.atomic
def chain_from_recipe(key: str, *, name: str | None = None) -> Chain:
    """A draft chain built from the recipe, with a new SMS template for each message to
    edit before the chain is activated."""
    recipe = recipes[key]
    chain = Chain(
        name=name or str(recipe.label),
        description=str(recipe.description),
        turn_on=recipe.turn_on,
        turn_off=list(recipe.turn_off),
        reentry=recipe.reentry,
        reentry_days=recipe.reentry_days,
        recipe=key,
    )
    steps = []
    for order, spec in enumerate(recipe.steps, start=1):
        params = dict(spec.params)
        if spec.kind == "send":
            template = MessageTemplate(
                name=_("%(chain)s: %(step)s") % {"chain": chain.name, "step": spec.name},
                channel="sms",
                description=_("Made from a chain recipe; edit before activating the chain."),
                text=str(spec.text),
            )
            template.full_clean()
            template.save()
            params["template"] = template.pk
        steps.append({"order": order, "kind": spec.kind, "params": params, "name": str(spec.name)})
    return chain_save(chain=chain, steps=steps)
