"""Offer filters on the member and the moment (registered into ``offer_filters``).

Filters on member data read the ``MemberInfo`` the context loaded for them (``needs``
names what to load) and never pass for an anonymous receipt. Dates and times are taken
in local time (``ctx.local_now``: the point of sale's time zone, or the member's for
events without one). A 29 February birthday falls on 28 February in other years, for
the birthday and for the age.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from loyalty.models import Gender, Status
from offers.catalog.filters import COMPARE, OfferFilter, compare, offer_filters
from offers.context import offer_counter_key, offer_period_start
from offers.engine import Context, Line, MemberInfo
from offers.models import Counter, CounterPeriod
from segments.models import Segment, TargetAudience


class MemberFilter(OfferFilter):
    """A filter on member data: fails when the receipt or event has no member."""

    def passes(self, ctx: Context) -> bool:
        return ctx.member is not None and self.member_passes(ctx, ctx.member)

    def member_passes(self, ctx: Context, member: MemberInfo) -> bool:
        raise NotImplementedError


def birthday_in(year: int, birth_date: dt.date) -> dt.date:
    """The member's birthday in ``year``; 29 February falls on 28 February in other years."""
    try:
        return birth_date.replace(year=year)
    except ValueError:
        return dt.date(year, 2, 28)


def age_on(day: dt.date, birth_date: dt.date) -> int:
    return day.year - birth_date.year - (day < birthday_in(day.year, birth_date))


# --- status ------------------------------------------------------------------------------
class MemberStatusParams(forms.Form):
    mode = forms.ChoiceField(
        label=_("condition"),
        choices=[("in", _("status is one of")), ("at_least", _("status is at least"))],
        initial="in",
    )
    statuses = forms.ModelMultipleChoiceField(
        label=_("statuses"), queryset=Status.objects.all(), to_field_name="code", required=False
    )
    min_status = forms.ModelChoiceField(
        label=_("lowest status"), queryset=Status.objects.all(), to_field_name="code", required=False
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("mode") == "in" and not cleaned.get("statuses"):
            self.add_error("statuses", _("Choose at least one status."))
        if cleaned.get("mode") == "at_least" and not cleaned.get("min_status"):
            self.add_error("min_status", _("Choose the lowest status."))
        return cleaned


@offer_filters.register
class MemberStatusFilter(MemberFilter):
    """The member's status is one of the chosen ones, or at least as high (by rank) as
    the chosen one. A member without a status never passes."""

    key = "member_status"
    label = _("Member status")
    params = MemberStatusParams

    def setup(self, params):
        self.mode = params.get("mode", "in")
        self.codes = frozenset(params.get("statuses") or ())
        self.min_rank = None
        if self.mode == "at_least":
            self.min_rank = (
                Status.objects.filter(code=params.get("min_status")).values_list("rank", flat=True).first()
            )

    def member_passes(self, ctx, member):
        if self.mode == "at_least":
            if self.min_rank is None or member.status_rank is None:
                return False
            return member.status_rank >= self.min_rank
        return member.status in self.codes


# --- personal data -----------------------------------------------------------------------
class GenderParams(forms.Form):
    genders = forms.MultipleChoiceField(label=_("gender"), choices=Gender.choices)


@offer_filters.register
class GenderFilter(MemberFilter):
    key = "gender"
    label = _("Gender")
    params = GenderParams

    def setup(self, params):
        self.genders = frozenset(params["genders"])

    def member_passes(self, ctx, member):
        return member.gender in self.genders


class AgeParams(forms.Form):
    operator = forms.ChoiceField(label=_("condition"), choices=COMPARE)
    years = forms.IntegerField(label=_("age, years"), min_value=0, max_value=150)


@offer_filters.register
class AgeFilter(MemberFilter):
    """The member's age in full years on the local date; no birth date, no pass."""

    key = "age"
    label = _("Age")
    params = AgeParams

    def setup(self, params):
        self.op, self.years = params["operator"], int(params["years"])

    def member_passes(self, ctx, member):
        if member.birth_date is None:
            return False
        return compare(age_on(ctx.local_now.date(), member.birth_date), self.op, self.years)


class BirthdayParams(forms.Form):
    days_before = forms.IntegerField(
        label=_("days before the birthday"), min_value=0, max_value=180, initial=0
    )
    days_after = forms.IntegerField(label=_("days after the birthday"), min_value=0, max_value=180, initial=0)


@offer_filters.register
class BirthdayFilter(MemberFilter):
    """Today (local date) is the member's birthday, or within the given days before or
    after it; the window may cross the new year."""

    key = "birthday"
    label = _("Birthday")
    help = _("0 days before and after: on the birthday only.")
    params = BirthdayParams

    def setup(self, params):
        self.before = dt.timedelta(days=int(params.get("days_before", 0)))
        self.after = dt.timedelta(days=int(params.get("days_after", 0)))

    def member_passes(self, ctx, member):
        if member.birth_date is None:
            return False
        today = ctx.local_now.date()
        for year in (today.year - 1, today.year, today.year + 1):
            day = birthday_in(year, member.birth_date)
            if day - self.before <= today <= day + self.after:
                return True
        return False


class DaysSinceRegistrationParams(forms.Form):
    operator = forms.ChoiceField(label=_("condition"), choices=COMPARE)
    days = forms.IntegerField(label=_("days"), min_value=0)


@offer_filters.register
class DaysSinceRegistrationFilter(MemberFilter):
    """Whole days from the registration date to today, both as local dates (0 on the
    day of registration)."""

    key = "days_since_registration"
    label = _("Days since registration")
    params = DaysSinceRegistrationParams

    def setup(self, params):
        self.op, self.days = params["operator"], int(params["days"])

    def member_passes(self, ctx, member):
        if member.registered_at is None:
            return False
        registered = member.registered_at.astimezone(ctx.local_now.tzinfo).date()
        return compare((ctx.local_now.date() - registered).days, self.op, self.days)


# --- audiences and segments --------------------------------------------------------------
class TargetAudienceParams(forms.Form):
    audiences = forms.ModelMultipleChoiceField(
        label=_("target audiences"), queryset=TargetAudience.objects.all()
    )


@offer_filters.register
class TargetAudienceFilter(MemberFilter):
    """The member is in any of the chosen target audiences."""

    key = "target_audience"
    label = _("Target audience")
    params = TargetAudienceParams
    needs = frozenset({"audiences"})

    def setup(self, params):
        self.ids = frozenset(int(pk) for pk in params["audiences"])

    def member_passes(self, ctx, member):
        return bool(self.ids & member.audiences)


class SegmentParams(forms.Form):
    segments = forms.ModelMultipleChoiceField(label=_("segments"), queryset=Segment.objects.all())


@offer_filters.register
class SegmentFilter(MemberFilter):
    """The member is in the current snapshot of any of the chosen segments (a segment
    never refreshed holds nobody)."""

    key = "segment"
    label = _("Segment")
    params = SegmentParams
    needs = frozenset({"segments"})

    def setup(self, params):
        self.ids = frozenset(int(pk) for pk in params["segments"])

    def member_passes(self, ctx, member):
        return bool(self.ids & member.segments)


# --- the moment --------------------------------------------------------------------------
WEEKDAYS = [
    (0, _("Monday")),
    (1, _("Tuesday")),
    (2, _("Wednesday")),
    (3, _("Thursday")),
    (4, _("Friday")),
    (5, _("Saturday")),
    (6, _("Sunday")),
]


class WeekdayTimeParams(forms.Form):
    days = forms.TypedMultipleChoiceField(
        label=_("days of the week"), choices=WEEKDAYS, coerce=int, required=False
    )
    time_from = forms.TimeField(label=_("from"), required=False)
    time_until = forms.TimeField(
        label=_("until"), required=False, help_text=_("Earlier than “from”: the window crosses midnight.")
    )

    def clean(self):
        cleaned = super().clean()
        if {"days", "time_from", "time_until"} & set(self.errors):
            return cleaned
        start, end = cleaned.get("time_from"), cleaned.get("time_until")
        if start is None and end is None:
            if not cleaned.get("days"):
                raise forms.ValidationError(_("Choose days of the week or a time window."))
        elif start is None:
            self.add_error("time_from", _("Give the start of the time window."))
        elif end is None:
            self.add_error("time_until", _("Give the end of the time window."))
        elif start == end:
            self.add_error("time_until", _("The window must end at another time than it starts."))
        return cleaned


@offer_filters.register
class WeekdayTimeFilter(OfferFilter):
    """Days of the week and/or a time window, in the point of sale's local time. The
    window includes its start and excludes its end; one that crosses midnight belongs to
    the day it starts on (Friday 22:00–02:00 holds at 01:00 on Saturday)."""

    key = "weekday_time"
    label = _("Days of the week and time")
    params = WeekdayTimeParams

    def setup(self, params):
        self.days = frozenset(int(d) for d in params.get("days") or ())
        start, end = params.get("time_from"), params.get("time_until")
        self.start = dt.time.fromisoformat(start) if start else None
        self.end = dt.time.fromisoformat(end) if end else None

    def passes(self, ctx):
        day, now = ctx.local_now.weekday(), ctx.local_now.time()
        if self.start is not None and self.end is not None:
            if self.start < self.end:
                inside = self.start <= now < self.end
            else:
                inside = now >= self.start or now < self.end
                if now < self.end:
                    day = (day - 1) % 7  # the small hours belong to the window of the day before
            if not inside:
                return False
        return not self.days or day in self.days


# --- counters and purchases --------------------------------------------------------------
class CounterParams(forms.Form):
    mode = forms.ChoiceField(
        label=_("compare"),
        choices=[
            ("counter", _("a counter's value")),
            ("purchases", _("the purchase's number (the member's n-th purchase)")),
        ],
        initial="counter",
    )
    counter = forms.ModelChoiceField(
        label=_("counter"), queryset=Counter.objects.all(), to_field_name="key", required=False
    )
    operator = forms.ChoiceField(label=_("condition"), choices=COMPARE)
    value = forms.DecimalField(label=_("value"), decimal_places=2)

    def clean(self):
        cleaned = super().clean()
        mode, value = cleaned.get("mode"), cleaned.get("value")
        if mode == "counter" and not cleaned.get("counter") and "counter" not in self.errors:
            self.add_error("counter", _("Choose a counter."))
        if mode == "purchases" and value is not None and (value < 1 or value != value.to_integral_value()):
            self.add_error("value", _("A purchase number is a whole number from 1."))
        return cleaned


@offer_filters.register
class CounterFilter(MemberFilter):
    """A counter's value in its current period (0 when nothing was counted yet), or the
    purchase's number: the member's confirmed purchases before this one plus one."""

    key = "counter"
    label = _("Counter or purchase number")
    params = CounterParams
    needs = frozenset({"counters", "purchases"})

    def setup(self, params):
        self.mode = params.get("mode", "counter")
        self.counter = params.get("counter", "")
        self.op, self.value = params["operator"], Decimal(params["value"])
        self.needs = frozenset({"purchases"}) if self.mode == "purchases" else frozenset({"counters"})
        self.per_offer = (
            self.mode == "counter"
            and Counter.objects.filter(key=self.counter, period=CounterPeriod.OFFER).exists()
        )

    def member_passes(self, ctx, member):
        if self.mode == "purchases":
            return compare(Decimal(member.purchases + 1), self.op, self.value)
        key = self.counter
        if self.per_offer:
            key = offer_counter_key(self.counter, offer_period_start(self.offer_starts_at))
        return compare(member.counters.get(key, Decimal(0)), self.op, self.value)


@offer_filters.register
class FirstPurchaseFilter(MemberFilter):
    """The member has no confirmed purchase before this one."""

    key = "first_purchase"
    label = _("First purchase")
    needs = frozenset({"purchases"})

    def member_passes(self, ctx, member):
        return member.purchases == 0


@offer_filters.register
class PersonalProductsFilter(OfferFilter):
    """Lines with the member's current personal products."""

    key = "personal_products"
    label = _("Personal products")
    needs = frozenset({"personal_products"})
    selects_lines = True
    purchase_only = True

    def select(self, ctx: Context, lines: list[Line]) -> list[Line]:
        if ctx.member is None:
            return []
        return [ln for ln in lines if ln.sku in ctx.member.personal_products]
