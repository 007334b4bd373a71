"""Celery tasks of the labeling app: thin wrappers that take ids and call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="labeling.tasks.import_job_run", acks_late=True)
def import_job_run_task(job_id: int) -> str:
    from labeling.services.imports import import_job_run

    return str(import_job_run(job_id=job_id).status)


@shared_task(name="labeling.tasks.assignments_expire_stale")
def assignments_expire_stale_task() -> int:
    from labeling.services.leases import assignments_expire_stale

    return assignments_expire_stale()
