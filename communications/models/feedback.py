"""Members' feedback to support: a thread per question, answered by contact-center
operators in the back office."""

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class FeedbackTopic(models.Model):
    name = models.CharField(_("name"), max_length=100)
    active = models.BooleanField(_("active"), default=True)
    order = models.PositiveSmallIntegerField(_("order"), default=100)

    class Meta:
        ordering = ["order", "name"]
        verbose_name = _("feedback topic")
        verbose_name_plural = _("feedback topics")

    def __str__(self) -> str:
        return gettext(self.name)  # a seeded entry in the viewer's language (communications.defaults)


class FeedbackStatus(models.TextChoices):
    NEW = "new", _("new")
    IN_PROGRESS = "in_progress", _("in progress")
    ANSWERED = "answered", _("answered")
    CLOSED = "closed", _("closed")


class Feedback(models.Model):
    # No index of its own: feedback_member leads with the member.
    member = models.ForeignKey(
        "loyalty.Member", models.CASCADE, related_name="feedback", verbose_name=_("member"), db_index=False
    )
    topic = models.ForeignKey(FeedbackTopic, models.PROTECT, null=True, blank=True, verbose_name=_("topic"))
    subject = models.CharField(_("subject"), max_length=200)
    status = models.CharField(
        _("status"), max_length=16, choices=FeedbackStatus.choices, default=FeedbackStatus.NEW
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("operator"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("last message at"), default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        verbose_name = _("feedback")
        verbose_name_plural = _("feedback")
        indexes = [
            models.Index(fields=["member", "updated_at"], name="feedback_member"),
            models.Index(fields=["status", "updated_at"], name="feedback_status"),
        ]

    def __str__(self) -> str:
        return self.subject


def attachment_path(instance: "FeedbackMessage", filename: str) -> str:
    """A random name under the thread's folder: the member's file name is kept in the
    row, never in the path."""
    suffix = Path(filename).suffix.lower()[:10]
    return f"feedback/{timezone.now():%Y/%m}/{uuid.uuid4().hex}{suffix}"


class FeedbackAuthor(models.TextChoices):
    MEMBER = "member", _("member")
    OPERATOR = "operator", _("operator")


class FeedbackMessage(models.Model):
    feedback = models.ForeignKey(Feedback, models.CASCADE, related_name="messages", verbose_name=_("request"))
    author = models.CharField(_("from"), max_length=8, choices=FeedbackAuthor.choices)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("operator"),
    )
    text = models.TextField(_("text"))
    attachment = models.FileField(_("attachment"), upload_to=attachment_path, blank=True)
    attachment_name = models.CharField(_("attachment name"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        verbose_name = _("feedback message")
        verbose_name_plural = _("feedback messages")

    def __str__(self) -> str:
        return f"{self.get_author_display()}: {self.text[:40]}"
