from celery import shared_task

from segments import services


@shared_task(name="segments.tasks.refresh_segments")
def refresh_segments() -> int:
    return services.segments_refresh()


@shared_task(name="segments.tasks.recompute_rfm")
def recompute_rfm() -> int:
    return services.rfm_recompute().scored
