"""Process start-up shared by the web server and the Celery workers."""

import gc


def startup_objects_freeze() -> None:
    """Move everything loaded at start-up (Django, the URL configuration, compiled
    templates...) out of the garbage collector's reach. A full collection otherwise
    walks those hundreds of thousands of objects again and again while a worker renders
    a batch of messages or a web process answers a point of sale: pauses of tens of
    milliseconds at random. In forked processes it also keeps the pages shared."""
    gc.collect()
    gc.freeze()
