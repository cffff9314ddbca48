import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    """Load the URL configuration (and with it every view) now, not on the first
    request, then keep all of it out of the garbage collector's walks."""
    from django.urls import get_resolver

    from config.runtime import startup_objects_freeze

    get_resolver().url_patterns  # noqa: B018
    startup_objects_freeze()


_warm_up()
