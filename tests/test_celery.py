"""Celery wiring: a real worker on Redis runs an import job enqueued on commit; GPU work routes to `gpu`."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from arbiter.celery import app as celery_app
from labeling.models import ImportJob, Task
from labeling.services.imports import import_job_create
from tests.factories import make_project, pairwise_lines

ROOT = Path(__file__).resolve().parent.parent
# A Redis database of its own (1..15) so a second suite running at the same time on this machine
# cannot consume this test's message.
REDIS_URL = os.environ.get("ARBITER_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{random.randint(1, 15)}")


def _drop_broker_connections() -> None:
    """Forget pooled broker connections so the next publish uses the current broker_url."""
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_gpu_work_is_routed_to_the_gpu_queue():
    router = celery_app.amqp.router
    assert router.route({}, "training.tasks.run_sft")["queue"].name == "gpu"
    assert router.route({}, "rewardmodel.tasks.train")["queue"].name == "gpu"
    assert router.route({}, "labeling.tasks.import_job_run")["queue"].name == "default"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_an_import_job_enqueued_on_commit(on_postgres, tmp_path, settings):
    settings.ARTIFACTS_ROOT = tmp_path
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "arbiter.settings",
        "DJANGO_SECRET_KEY": "celery-test",
        "DATABASE_URL": "postgres://{}@{}:{}/{}".format(
            db["USER"] or "postgres", db["HOST"] or "127.0.0.1", db["PORT"] or 5432, db["NAME"]
        ),
        "CELERY_BROKER_URL": REDIS_URL,
        "ARTIFACTS_ROOT": str(tmp_path),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "arbiter",
            "worker",
            "-Q",
            "default",
            "--pool=solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.broker_url)
    conf.task_always_eager, conf.broker_url = False, REDIS_URL
    _drop_broker_connections()
    try:
        project = make_project()
        path = tmp_path / "upload.jsonl"
        path.write_text("\n".join(pairwise_lines(25)) + "\n")
        job = import_job_create(project=project, created_by=None, filename="upload.jsonl", path=path, total_lines=25)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status in ("succeeded", "failed"):
                break
            time.sleep(0.3)
        if job.status != "succeeded":
            worker.terminate()
            output = worker.communicate(timeout=20)[0].decode(errors="replace")
            pytest.fail(f"job {job.status!r} {job.message!r}; broker {celery_app.pool.connection.as_uri()}\n{output}")
        assert Task.objects.filter(project=project).count() == 25
        # A redelivered message is a no-op: the status guard refuses to run the job twice.
        from labeling.services.imports import import_job_run

        assert import_job_run(job_id=job.pk).created_tasks == 25
        assert Task.objects.filter(project=project).count() == 25
        assert ImportJob.objects.get(pk=job.pk).status == "succeeded"
    finally:
        conf.task_always_eager, conf.broker_url = saved
        _drop_broker_connections()
        worker.terminate()
        try:
            out = worker.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            worker.kill()
            out = worker.communicate()[0]
        if os.environ.get("ARBITER_DEBUG_CELERY"):
            print(out.decode(errors="replace"))
