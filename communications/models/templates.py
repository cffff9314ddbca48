"""Message templates (one per channel, with metavariables) and the watchers who get the
test sends of a template or mailing."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from gateways.models import CHANNEL_CHOICES

# The content keys each channel's template fills, in the order a form shows them; the
# values are the template's field names. ``template_id`` is sent as written, the rest are
# rendered with metavariables.
CHANNEL_PARTS: dict[str, dict[str, str]] = {
    "sms": {"text": "text"},
    "email": {"subject": "subject", "preheader": "preheader", "html": "html", "text": "text"},
    "push": {"title": "title", "body": "text", "image": "image", "link": "link"},
    "viber": {"text": "text", "image": "image", "button_text": "button_text", "button_url": "button_url"},
    "social": {"template_id": "social_template_id", "text": "text"},
}
LITERAL_PARTS = frozenset({"template_id"})


class MessageTemplate(models.Model):
    name = models.CharField(_("name"), max_length=200)
    channel = models.CharField(_("channel"), max_length=8, choices=CHANNEL_CHOICES)
    description = models.CharField(_("description"), max_length=255, blank=True, default="")
    subject = models.CharField(_("subject"), max_length=255, blank=True, default="")
    preheader = models.CharField(
        _("preheader"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("The line mail apps show after the subject."),
    )
    title = models.CharField(_("title"), max_length=255, blank=True, default="")
    text = models.TextField(_("text"), blank=True, default="")
    html = models.TextField(_("HTML"), blank=True, default="")
    image = models.CharField(_("image address"), max_length=500, blank=True, default="")
    link = models.CharField(_("link (deep link)"), max_length=500, blank=True, default="")
    button_text = models.CharField(_("button caption"), max_length=64, blank=True, default="")
    button_url = models.CharField(_("button link"), max_length=500, blank=True, default="")
    social_template_id = models.CharField(
        _("template id (social networks)"),
        max_length=128,
        blank=True,
        default="",
        help_text=_("The template moderated by the social network."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("updated by"),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")

    def __str__(self) -> str:
        return f"{self.name} ({self.get_channel_display()})"

    def parts(self) -> dict[str, str]:
        """Content key → template text, for the parts of this channel that are filled in."""
        return {
            key: getattr(self, field)
            for key, field in CHANNEL_PARTS.get(self.channel, {}).items()
            if getattr(self, field)
        }

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from communications.templating import template_record_errors

        errors = template_record_errors(self)
        if errors:
            raise ValidationError(errors)


class Watcher(models.Model):
    """A colleague who receives the test sends of templates and mailings."""

    name = models.CharField(_("name"), max_length=200)
    phone = models.CharField(_("phone"), max_length=16, blank=True, default="")
    email = models.CharField(_("email"), max_length=254, blank=True, default="")
    push_token = models.CharField(_("push device token"), max_length=512, blank=True, default="")
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("watcher")
        verbose_name_plural = _("watchers")

    def __str__(self) -> str:
        return self.name
