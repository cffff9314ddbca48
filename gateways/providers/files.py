"""The embedded default: gateways that write each message where a person can open it.

The file gateways write one file per message under ``OUTBOX_DIR/<channel>/`` (email as
an ``.eml`` any mail program opens, other channels as readable ``.txt``) and report it
delivered; the console gateways print the message to the worker's output.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from gateways.providers._email import mime_bytes
from gateways.providers._sms import sms_length
from gateways.providers.base import (
    CHANNELS,
    EMAIL,
    SMS,
    Lifecycle,
    Outcome,
    OutgoingMessage,
    Provider,
    SendResult,
    providers,
)

log = logging.getLogger(__name__)

ALL_CAPABILITIES = frozenset({"text", "html", "images", "image", "button", "link", "template_id"})


def _summary(message: OutgoingMessage) -> str:
    lines = [f"To: {message.to}", f"Channel: {message.channel}", f"Ref: {message.ref}"]
    for key, value in message.content.items():
        if key in ("html", "images"):
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        lines.append(f"{key.replace('_', ' ').capitalize()}: {value}")
    return "\n".join(lines) + "\n"


class _Local(Provider):
    capabilities = ALL_CAPABILITIES
    max_batch = 500
    deduplicates = True  # the file name is the message's ref: a retry overwrites it
    default_rate_per_second = 10000.0

    def segments(self, content):
        if self.channel == SMS:
            return max(1, sms_length(content.get("text", "")).segments)
        return 1


class FileProvider(_Local):
    def _path(self, message: OutgoingMessage) -> Path:
        folder = Path(settings.OUTBOX_DIR) / message.channel
        folder.mkdir(parents=True, exist_ok=True)
        # Named by the message ref alone: a retried message overwrites its own file.
        return folder / f"{message.ref}.{'eml' if message.channel == EMAIL else 'txt'}"

    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        for message in batch:
            path = self._path(message)
            if message.channel == EMAIL:
                path.write_bytes(mime_bytes(message, sender=self.settings.sender or "loyalty@localhost").data)
            else:
                path.write_text(_summary(message), encoding="utf-8")
            results.append(
                SendResult(
                    message.id,
                    Outcome.ACCEPTED,
                    Lifecycle.DELIVERED,
                    provider_message_id=path.name,
                    segments=self.segments(message.content),
                )
            )
        return results


class ConsoleProvider(_Local):
    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        for message in batch:
            sys.stdout.write("----- message -----\n" + _summary(message))
        sys.stdout.flush()
        return [
            SendResult(m.id, Outcome.ACCEPTED, Lifecycle.DELIVERED, provider_message_id=m.ref) for m in batch
        ]


_LABELS = {
    "sms": (_("File (SMS)"), _("Console (SMS)")),
    "email": (_("File (email, .eml)"), _("Console (email)")),
    "push": (_("File (push)"), _("Console (push)")),
    "viber": (_("File (Viber)"), _("Console (Viber)")),
    "social": (_("File (social networks)"), _("Console (social networks)")),
}

for _channel in CHANNELS:
    _file_label, _console_label = _LABELS[_channel]
    providers.register(
        type(
            f"File{_channel.title()}Provider",
            (FileProvider,),
            {"key": f"file_{_channel}", "label": _file_label, "channel": _channel},
        )
    )
    providers.register(
        type(
            f"Console{_channel.title()}Provider",
            (ConsoleProvider,),
            {"key": f"console_{_channel}", "label": _console_label, "channel": _channel},
        )
    )
