"""Uploaded files leave storage with their rows (``loyalty.files``): a member's feedback
attachments when the thread or the member is deleted, a content image when its material
is deleted or given another image; a rolled-back deletion keeps them."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from communications.models import FeedbackTopic
from communications.services.feedback import feedback_open
from portal.models import TargetedContent

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7V\xbd\xfa\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _path(file) -> Path:
    return Path(file.storage.path(file.name))


@pytest.fixture
def thread(member):
    topic = FeedbackTopic.objects.create(name="Bonuses")
    return feedback_open(
        member=member,
        topic=topic,
        subject="Where are my bonuses?",
        text="See the receipt.",
        attachment=SimpleUploadedFile("receipt.png", PNG, "image/png"),
    )


def test_deleting_a_member_deletes_their_attachments_once_it_commits(
    thread, django_capture_on_commit_callbacks
):
    stored = _path(thread.messages.get().attachment)
    assert stored.exists()

    # when the member goes, and with them (by cascade) their threads and messages
    with django_capture_on_commit_callbacks(execute=True):
        thread.member.delete()

    # then the file is gone
    assert not stored.exists()


def test_a_rolled_back_deletion_keeps_the_file(thread, django_capture_on_commit_callbacks):
    stored = _path(thread.messages.get().attachment)

    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        thread.delete()
        transaction.set_rollback(True)

    assert stored.exists() and callbacks == []


def test_a_content_image_goes_with_its_material_and_when_replaced(db, django_capture_on_commit_callbacks):
    content = TargetedContent.objects.create(
        title="Winter", image=SimpleUploadedFile("a.png", PNG, "image/png")
    )
    first = _path(content.image)

    # when another image is uploaded in its place
    with django_capture_on_commit_callbacks(execute=True):
        content.image = SimpleUploadedFile("b.png", PNG, "image/png")
        content.save()
    second = _path(content.image)

    # then the first is gone and the second stays, until the material is deleted
    assert not first.exists() and second.exists()
    with django_capture_on_commit_callbacks(execute=True):
        content.title = "Winter sale"
        content.save()
    assert second.exists()
    with django_capture_on_commit_callbacks(execute=True):
        content.delete()
    assert not second.exists()


def test_the_operators_command_lists_and_deletes_only_files_no_row_refers_to(thread, settings):
    import os
    import time
    from io import StringIO

    from django.core.management import CommandError, call_command

    kept = _path(thread.messages.get().attachment)
    os.utime(kept, (time.time() - 7200, time.time() - 7200))
    orphan = Path(settings.MEDIA_ROOT) / "feedback" / "2025" / "01" / "left-behind.png"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(PNG)
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))  # left two hours ago
    # and a file just written whose row has not committed yet (an upload in flight)
    uploading = orphan.parent / "uploading.png"
    uploading.write_bytes(PNG)

    listed = StringIO()
    call_command("media_orphans", stdout=listed)
    assert str(orphan) in listed.getvalue() and str(kept) not in listed.getvalue()
    assert str(uploading) not in listed.getvalue()
    assert "Found 1 unreferenced file." in listed.getvalue() and orphan.exists()

    call_command("media_orphans", "--delete", stdout=StringIO())
    assert not orphan.exists() and kept.exists() and uploading.exists()
    # --older-than 0 takes the fresh one too; a negative age is refused
    call_command("media_orphans", "--delete", "--older-than", "0", stdout=StringIO())
    assert not uploading.exists() and kept.exists()
    with pytest.raises(CommandError, match="--older-than"):
        call_command("media_orphans", "--older-than", "-1", stdout=StringIO())
