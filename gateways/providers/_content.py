"""Content rules shared by adapters: what a Viber or social message may contain."""

from __future__ import annotations

from django.utils.translation import gettext as _

# The combinations the specification names (seed 001): text only, image only,
# text + button, text + image + button.
VIBER_COMBINATIONS = {
    frozenset({"text"}),
    frozenset({"image"}),
    frozenset({"text", "button"}),
    frozenset({"text", "image", "button"}),
}


def viber_parts(content: dict) -> frozenset[str]:
    parts = set()
    if content.get("text"):
        parts.add("text")
    if content.get("image"):
        parts.add("image")
    if content.get("button_text") or content.get("button_url"):
        parts.add("button")
    return frozenset(parts)


def viber_errors(content: dict, *, text_limit: int = 1000, caption_limit: int = 30) -> list[str]:
    errors = []
    parts = viber_parts(content)
    if parts not in VIBER_COMBINATIONS:
        errors.append(
            _("Viber allows text only, image only, text with a button, or text with an image and a button.")
        )
    if "button" in parts and not (content.get("button_text") and content.get("button_url")):
        errors.append(_("A Viber button needs both its caption and its link."))
    if len(content.get("text") or "") > text_limit:
        errors.append(_("Viber text is limited to %(n)s characters.") % {"n": text_limit})
    if len(content.get("button_text") or "") > caption_limit:
        errors.append(_("A Viber button caption is limited to %(n)s characters.") % {"n": caption_limit})
    return errors


def social_errors(content: dict) -> list[str]:
    errors = []
    if not str(content.get("template_id") or "").strip():
        errors.append(_("Social-network notifications need the moderated template id."))
    extra = set(content) - {"template_id", "data", "text"}
    if extra & {"image", "button_text", "button_url", "html"}:
        errors.append(_("Social-network notifications carry text only."))
    return errors


def text_errors(content: dict, *, limit: int) -> list[str]:
    errors = []
    text = content.get("text") or ""
    if not text.strip():
        errors.append(_("The message text is empty."))
    if len(text) > limit:
        errors.append(_("The text is limited to %(n)s characters on this provider.") % {"n": limit})
    extra = {"image", "button_text", "button_url", "html"} & {k for k, v in content.items() if v}
    if extra:
        errors.append(_("This channel carries text only."))
    return errors
