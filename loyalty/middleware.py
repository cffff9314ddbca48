import zoneinfo

from django.utils import timezone


class ViewerTimezoneMiddleware:
    """Shows times in the viewer's time zone: the browser reports it in the ``tz`` cookie
    (set by the back-office base template); without it the program's ``TIME_ZONE`` holds."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = request.COOKIES.get("tz", "")
        try:
            timezone.activate(zoneinfo.ZoneInfo(name)) if name else timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        return self.get_response(request)
