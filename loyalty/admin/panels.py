"""Panels other apps add to the member page without ``loyalty`` importing them.

An app registers a function of the member returning ``{"title": ..., "columns": [...],
"rows": [[...], ...]}`` (or ``None`` to show nothing) in its ``AppConfig.ready()``."""

from collections.abc import Callable

MemberPanel = Callable[[object], dict | None]
member_panels: list[MemberPanel] = []


def register_member_panel(panel: MemberPanel) -> MemberPanel:
    if panel not in member_panels:
        member_panels.append(panel)
    return panel
