import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from django.core.signals import request_started  # noqa: E402

from config.runtime import previous_request_garbage_collect, startup_objects_freeze  # noqa: E402

startup_objects_freeze()
request_started.connect(previous_request_garbage_collect, dispatch_uid="previous_request_garbage_collect")
