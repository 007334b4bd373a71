"""The Celery app. Queues: ``default`` (imports, exports, housekeeping) and ``gpu`` (training, generation).

GPU workers run ``--queues=gpu --concurrency=1 --max-tasks-per-child=1`` so each run gets a fresh
process (CUDA memory is returned to the driver when the child exits).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings")

app = Celery("arbiter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
