from celery import shared_task

from segments import services, stats


@shared_task(name="segments.tasks.refresh_segments")
def refresh_segments() -> int:
    return services.segments_refresh()


@shared_task(name="segments.tasks.age_purchase_stats")
def age_purchase_stats() -> int:
    return stats.stats_age()


@shared_task(name="segments.tasks.recompute_rfm")
def recompute_rfm() -> int:
    stats.stats_age()
    return services.rfm_recompute().scored
