"""Uploaded files leave with their rows. Django deletes a row (or a whole member's rows,
by cascade) and keeps its files: members' attachments and content images would pile up
in storage, and a member's files would outlive the member. ``files_follow_rows`` deletes
a row's files once the deleting transaction commits (a rollback keeps them), and a file
replaced by another upload once the change commits."""

import datetime as dt
import time
from pathlib import Path

from django.apps import apps
from django.db import transaction
from django.db.models import FileField, Model
from django.db.models.signals import post_delete, post_save, pre_save


def _delete_after_commit(storage, name: str, using: str | None) -> None:
    transaction.on_commit(lambda: storage.delete(name), using=using)


def files_follow_rows(model: type[Model], *fields: str) -> None:
    """Delete the files in ``fields`` of ``model`` when their row is deleted or the field
    is given another file."""
    label = model._meta.label
    storages = {name: model._meta.get_field(name).storage for name in fields}

    def deleted(sender, instance, using=None, **kwargs):
        for name in fields:
            file = getattr(instance, name)
            if file and file.name:
                _delete_after_commit(storages[name], file.name, using)

    def saving(sender, instance, raw=False, using=None, **kwargs):
        if raw or instance._state.adding or instance.pk is None:
            return
        before = sender._default_manager.using(using).filter(pk=instance.pk).values(*fields).first()
        instance._files_before = before or {}

    def saved(sender, instance, raw=False, using=None, **kwargs):
        before = instance.__dict__.pop("_files_before", None)
        if raw or not before:
            return
        for name in fields:
            old, new = before.get(name) or "", getattr(instance, name).name or ""
            if old and old != new:
                _delete_after_commit(storages[name], old, using)

    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=f"files-deleted:{label}")
    pre_save.connect(saving, sender=model, weak=False, dispatch_uid=f"files-saving:{label}")
    post_save.connect(saved, sender=model, weak=False, dispatch_uid=f"files-saved:{label}")


def files_unreferenced(storage_root, *, older_than: dt.timedelta = dt.timedelta(0)) -> list[Path]:
    """Files under ``storage_root`` (the media folder) that no row's file field names:
    left by deletions before files followed their rows, or by uploads whose transaction
    rolled back. Read set-wise: one query per file field. ``older_than``: only files last
    written at least that long ago (an upload is on disk before its row commits)."""
    cutoff = time.time() - older_than.total_seconds()
    referenced: set[str] = set()
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, FileField):
                names = model._default_manager.exclude(**{field.name: ""}).values_list(field.name, flat=True)
                referenced.update(name for name in names.iterator(chunk_size=5000) if name)
    root = Path(storage_root)
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.relative_to(root).as_posix() not in referenced
        and path.stat().st_mtime <= cutoff
    )
