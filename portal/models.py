"""The members' personal account: one-time sign-in codes, the mobile app's tokens, and
the targeted content (promotional materials) shown to members.

Codes and tokens are stored as hashes only: a database dump signs nobody in.
"""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class CodePurpose(models.TextChoices):
    SIGN_IN = "sign_in", _("sign-in")
    REGISTER = "register", _("registration")
    BIND = "bind", _("contact confirmation")


class CodeChannel(models.TextChoices):
    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")


class LoginCode(models.Model):
    """One code sent to a phone or email. Verified by hash, at most ``attempts`` tries,
    until ``expires_at``; used once."""

    channel = models.CharField(_("channel"), max_length=8, choices=CodeChannel.choices)
    address = models.CharField(_("address"), max_length=254)
    purpose = models.CharField(_("purpose"), max_length=16, choices=CodePurpose.choices)
    member = models.ForeignKey(
        "loyalty.Member", models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("member")
    )
    code_hash = models.CharField(_("code hash"), max_length=128)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    attempts = models.PositiveSmallIntegerField(_("failed attempts"), default=0)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("one-time code")
        verbose_name_plural = _("one-time codes")
        indexes = [
            models.Index(fields=["address", "created_at"], name="login_code_address"),
            models.Index(fields=["ip", "created_at"], name="login_code_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} {self.created_at:%Y-%m-%d %H:%M}"


class MemberToken(models.Model):
    """A mobile app's bearer token for the member API, issued after a code sign-in."""

    member = models.ForeignKey(
        "loyalty.Member", models.CASCADE, related_name="api_tokens", verbose_name=_("member")
    )
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    name = models.CharField(_("device"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("member app token")
        verbose_name_plural = _("member app tokens")

    def __str__(self) -> str:
        return f"{self.member_id}: {self.name or self.pk}"


class Placement(models.TextChoices):
    ACCOUNT = "account", _("personal account")
    APP = "app", _("mobile app")


class TargetedContent(models.Model):
    """A promotional material: shown to every member, or only to a target audience's
    members (then it is a personal offer), within its display window."""

    title = models.CharField(_("title"), max_length=200)
    text = models.TextField(_("text"), blank=True)
    image = models.ImageField(_("image"), upload_to="content/%Y/%m/", blank=True)
    link = models.URLField(_("link"), blank=True)
    link_label = models.CharField(_("link label"), max_length=60, blank=True)
    in_account = models.BooleanField(_("in the personal account"), default=True)
    in_app = models.BooleanField(_("in the mobile app"), default=True)
    audience = models.ForeignKey(
        "segments.TargetAudience",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("target audience"),
        help_text=_("Empty: every member sees it. Set: only the audience's members, as a personal offer."),
    )
    offer = models.ForeignKey(
        "offers.Offer",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("advertised offer"),
        help_text=_("Hidden once the offer is finished or archived."),
    )
    shown_from = models.DateTimeField(
        _("shown from"),
        null=True,
        blank=True,
        help_text=_("Empty: from publication, or a few days before the advertised offer starts."),
    )
    lead_days = models.PositiveSmallIntegerField(
        _("days shown before the offer"),
        default=3,
        help_text=_(
            "With an advertised offer and no start of its own: shown this many days before it starts."
        ),
    )
    shown_until = models.DateTimeField(
        _("shown until"), null=True, blank=True, help_text=_("Empty: until the advertised offer ends.")
    )
    order = models.PositiveSmallIntegerField(_("order"), default=100, help_text=_("Lower comes first."))
    published = models.BooleanField(_("published"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["order", "-shown_from", "pk"]
        verbose_name = _("targeted content")
        verbose_name_plural = _("targeted content")
        indexes = [models.Index(fields=["published", "order"], name="content_published_order")]

    def __str__(self) -> str:
        return self.title


class MemberPassword(models.Model):
    """The optional password a member sets in the personal account (a code always works)."""

    member = models.OneToOneField(
        "loyalty.Member", models.CASCADE, primary_key=True, related_name="+", verbose_name=_("member")
    )
    password = models.CharField(_("password"), max_length=128)
    failed = models.PositiveSmallIntegerField(_("wrong tries"), default=0)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    changed_at = models.DateTimeField(_("changed at"), auto_now=True)

    class Meta:
        verbose_name = _("member password")
        verbose_name_plural = _("member passwords")

    def __str__(self) -> str:
        return str(self.member_id)
