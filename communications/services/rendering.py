"""Rendering messages at send time.

Mailings, chains and regular notifications queue messages with an empty ``content`` and
a ``render`` reference instead: ``{"template": id, "event": {...}, "offer": {...}}``. The
dispatcher renders a claimed batch here, after the contact budget, so only messages that
are really going out are rendered, with the member's data as it is at that moment. A
message whose template fails to render fails with the reason; the others go on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from communications.models import MessageTemplate
from communications.services.tracking import _base, unsubscribe_url
from communications.templating import (
    RenderError,
    RenderJob,
    content_from_parts,
    parts_names,
    render_batch,
)

_SAMPLE_REF = "00000000-0000-0000-0000-000000000000"
_view_pattern: str | None = None


def view_online_url(ref) -> str:
    global _view_pattern
    if _view_pattern is None:
        _view_pattern = reverse("communications:view", args=[_SAMPLE_REF])
    return _base() + _view_pattern.replace(_SAMPLE_REF, str(ref))


def content_for_channel(channel: str, template_channel: str, rendered: dict[str, str]) -> dict[str, str]:
    """The rendered parts as ``channel``'s content. A cascade step on another channel
    than the template's takes its text (and the email subject or push title as a title)."""
    content = content_from_parts(template_channel, rendered)
    if channel == template_channel:
        return content
    text = content.get("text") or content.get("body") or ""
    if channel == "email":
        return {"subject": content.get("subject") or content.get("title", ""), "text": text}
    if channel == "push":
        return {"title": content.get("title") or content.get("subject", ""), "body": text}
    if channel == "viber":
        keep = {k: content[k] for k in ("image", "button_text", "button_url") if content.get(k)}
        return {"text": text, **keep}
    if channel == "social":
        return {"template_id": content.get("template_id", ""), "text": text}
    return {"text": text}


def templates_load(ids: set[int]) -> dict[int, MessageTemplate]:
    return {t.pk: t for t in MessageTemplate.objects.filter(pk__in=ids)}


def _links_used(parts: dict[str, str]) -> tuple[bool, bool]:
    """Whether the parts read the unsubscribe and view-online links (built per message
    only when they do)."""
    names = parts_names(parts)
    return "unsubscribe_url" in names, "view_online_url" in names


def rows_render(rows: list[dict], *, now: dt.datetime) -> tuple[list[dict], dict[int, str]]:
    """Fill ``content`` of claimed rows that carry a ``render`` reference. Returns the
    rows ready to send and ``{message id: reason}`` for those that could not render."""
    pending = [r for r in rows if r.get("render") and not r.get("content")]
    if not pending:
        return rows, {}
    templates = templates_load({int(r["render"].get("template") or 0) for r in pending})
    parts = {pk: t.parts() for pk, t in templates.items()}  # one dict per template: parsed once
    links = {pk: _links_used(p) for pk, p in parts.items()}
    jobs: list[RenderJob] = []
    failed: dict[int, str] = {}
    for r in pending:
        ref = r["render"]
        template = templates.get(int(ref.get("template") or 0))
        if template is None:
            failed[r["id"]] = _("the message template was deleted")
            continue
        extra: dict[str, Any] = {"event": ref.get("event") or {}, "offer": ref.get("offer") or {}}
        unsubscribe, view_online = links[template.pk]
        if unsubscribe or view_online:
            ref_text = str(r["ref"])
            if unsubscribe:
                extra["unsubscribe_url"] = unsubscribe_url(ref_text)
            if view_online:
                extra["view_online_url"] = view_online_url(ref_text)
        jobs.append(RenderJob(r["id"], r["member_id"], parts[template.pk], extra))
    results = render_batch(jobs, now=now)
    by_id = {r["id"]: r for r in pending}
    for job in jobs:
        result = results[job.key]
        if isinstance(result, RenderError):
            failed[job.key] = (_("template could not be rendered: %(error)s") % {"error": result})[:255]
            continue
        row = by_id[job.key]
        template = templates[int(row["render"]["template"])]
        row["content"] = content_for_channel(row["channel"], template.channel, result)
    return [r for r in rows if r["id"] not in failed], failed


def message_content(message) -> dict[str, str]:
    """What a message says: its stored content, or its template rendered again for the
    member (the view-online page, the message page in the back office)."""
    if message.content or not message.render:
        return message.content
    row = {
        "id": message.pk,
        "ref": message.ref,
        "member_id": message.member_id,
        "channel": message.channel,
        "render": message.render,
        "content": {},
    }
    ready, failed = rows_render([row], now=message.sent_at or message.created_at)
    return ready[0]["content"] if ready else {}
