"""Members' feedback: a member opens a thread (topic, subject, text, an optional
attachment) and writes to it; contact-center operators answer in the back office and
the member is told by a service message on their email or phone.

Statuses: new (waiting for an operator), in progress (an operator took it), answered
(waiting for the member), closed (no more messages; the member opens a new thread).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from communications.models import (
    Feedback,
    FeedbackAuthor,
    FeedbackMessage,
    FeedbackStatus,
    FeedbackTopic,
    Origin,
    Purpose,
)
from loyalty.models import Member

MAX_TEXT = 5000


def attachment_check(upload: UploadedFile | None) -> None:
    """Refuse a file that is too big or of a kind support does not take (``ValidationError``
    on ``attachment``)."""
    if upload is None:
        return
    cfg = settings.PORTAL
    suffix = Path(upload.name or "").suffix.lower()
    if suffix not in cfg["ATTACHMENT_TYPES"]:
        raise ValidationError(
            {
                "attachment": _("Files of type %(kind)s are not accepted; send one of: %(kinds)s.")
                % {"kind": suffix or "?", "kinds": ", ".join(cfg["ATTACHMENT_TYPES"])}
            }
        )
    if upload.size > cfg["ATTACHMENT_MAX_BYTES"]:
        raise ValidationError(
            {
                "attachment": _("The file is too large: at most %(mb)s MB.")
                % {"mb": round(cfg["ATTACHMENT_MAX_BYTES"] / 1024 / 1024, 1)}
            }
        )


def _text_check(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": _("Write your message.")})
    if len(text) > MAX_TEXT:
        raise ValidationError({"text": _("At most %(count)s characters.") % {"count": MAX_TEXT}})
    return text


def _add(
    feedback: Feedback,
    *,
    author: str,
    text: str,
    attachment: UploadedFile | None,
    operator=None,
) -> FeedbackMessage:
    message = FeedbackMessage(feedback=feedback, author=author, operator=operator, text=text)
    if attachment is not None:
        message.attachment_name = Path(attachment.name or "file").name[:200]
        message.attachment.save(attachment.name or "file", attachment, save=False)
    message.save()
    return message


@transaction.atomic
def feedback_open(
    *,
    member: Member,
    topic: FeedbackTopic | None,
    subject: str,
    text: str,
    attachment: UploadedFile | None = None,
) -> Feedback:
    """A new thread with the member's first message."""
    subject = (subject or "").strip()
    if not subject:
        raise ValidationError({"subject": _("Give your question a subject.")})
    if topic is not None and not topic.active:
        raise ValidationError({"topic": _("Choose one of the listed topics.")})
    text = _text_check(text)
    attachment_check(attachment)
    now = timezone.now()
    feedback = Feedback.objects.create(
        member=member, topic=topic, subject=subject[:200], created_at=now, updated_at=now
    )
    _add(feedback, author=FeedbackAuthor.MEMBER, text=text, attachment=attachment)
    return feedback


@transaction.atomic
def feedback_reply(
    *, feedback: Feedback, member: Member, text: str, attachment: UploadedFile | None = None
) -> FeedbackMessage:
    """The member writes again in their thread; it waits for an operator again."""
    if feedback.member_id != member.pk:
        raise Feedback.DoesNotExist
    if feedback.status == FeedbackStatus.CLOSED:
        raise ValidationError({"text": _("This conversation is closed. Write a new message to support.")})
    text = _text_check(text)
    attachment_check(attachment)
    message = _add(feedback, author=FeedbackAuthor.MEMBER, text=text, attachment=attachment)
    status = FeedbackStatus.IN_PROGRESS if feedback.assigned_to_id else FeedbackStatus.NEW
    Feedback.objects.filter(pk=feedback.pk).update(status=status, updated_at=message.created_at)
    feedback.status, feedback.updated_at = status, message.created_at
    return message


@transaction.atomic
def feedback_answer(
    *,
    feedback: Feedback,
    operator,
    text: str,
    attachment: UploadedFile | None = None,
    close: bool = False,
) -> FeedbackMessage:
    """An operator answers; the thread becomes answered (or closed) and the member gets a
    service message saying an answer is waiting in the personal account."""
    text = _text_check(text)
    attachment_check(attachment)
    message = _add(
        feedback, author=FeedbackAuthor.OPERATOR, text=text, attachment=attachment, operator=operator
    )
    feedback.status = FeedbackStatus.CLOSED if close else FeedbackStatus.ANSWERED
    feedback.updated_at = message.created_at
    feedback.assigned_to_id = feedback.assigned_to_id or getattr(operator, "pk", None)
    feedback.save(update_fields=["status", "updated_at", "assigned_to"])
    feedback_notify(feedback=feedback, message=message)
    return message


@transaction.atomic
def feedback_set_status(*, feedback: Feedback, status: str, operator=None) -> Feedback:
    """Move the thread to ``status``; taking it in progress assigns it to the operator."""
    if status not in FeedbackStatus.values:
        raise ValidationError({"status": _("Unknown status %(status)s.") % {"status": status}})
    feedback.status = status
    if status == FeedbackStatus.IN_PROGRESS and operator is not None:
        feedback.assigned_to = operator  # whoever takes it owns it from now on
    feedback.save(update_fields=["status", "assigned_to"])
    return feedback


def feedback_notify(*, feedback: Feedback, message: FeedbackMessage) -> None:
    """Tell the member an answer is waiting: by email if they have a usable one, else by SMS. A
    service message: consent is not needed, quiet hours apply."""
    from django.utils import translation

    from communications.services.delivery import message_send
    from loyalty.models import ContactStatus

    member = feedback.member
    usable = {
        "email": member.email and member.email_status != ContactStatus.INVALID,
        "sms": member.phone and member.phone_status != ContactStatus.INVALID,
    }
    channel = "email" if usable["email"] else ("sms" if usable["sms"] else "")
    if not channel:
        return
    with translation.override(member.language or settings.LANGUAGE_CODE):
        program = settings.LOYALTY["PROGRAM_NAME"]
        text = _(
            'Support answered your question "%(subject)s". '
            "Read the answer in your %(program)s personal account."
        ) % {"subject": feedback.subject[:60], "program": program}
        content = {"text": text}
        if channel == "email":
            content = {
                "subject": _("Support answered: %(subject)s") % {"subject": feedback.subject[:80]},
                "text": text,
            }
    message_send(
        channel=channel,
        content=content,
        origin=Origin.TRANSACTIONAL,
        member=member,
        purpose=Purpose.SERVICE,
        occurrence=f"feedback-answer:{message.pk}",
    )


def feedback_of(member: Member, feedback_id: int) -> Feedback | None:
    """One of the member's own threads with its messages, or ``None``."""
    return (
        Feedback.objects.filter(member=member, pk=feedback_id)
        .select_related("topic")
        .prefetch_related("messages")
        .first()
    )


def feedback_list(member: Member, *, limit: int = 50) -> list[Feedback]:
    return list(
        Feedback.objects.filter(member=member).select_related("topic").order_by("-updated_at", "-pk")[:limit]
    )
