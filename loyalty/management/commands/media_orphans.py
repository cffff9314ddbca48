from django.conf import settings
from django.core.management.base import BaseCommand

from loyalty.files import files_unreferenced


class Command(BaseCommand):
    help = (
        "List the uploaded files no row refers to any more (attachments and images of rows "
        "deleted before files followed their rows); --delete removes them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="delete the files listed")

    def handle(self, *args, delete=False, **options):
        orphans = files_unreferenced(settings.MEDIA_ROOT)
        for path in orphans:
            self.stdout.write(str(path))
            if delete:
                path.unlink(missing_ok=True)
        verb = "Deleted" if delete else "Found"
        self.stdout.write(f"{verb} {len(orphans)} unreferenced file(s).")
