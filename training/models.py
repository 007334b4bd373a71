"""Training-side records. Today: registered checkpoints, which completions can cite as their source.

Runs (SFT/DPO/RLOO/GRPO on the ``gpu`` queue) will reference a ``labeling.DatasetSnapshot`` and a
base ``Checkpoint``, and register their output as a new ``Checkpoint``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class CheckpointKind(models.TextChoices):
    PRETRAINED = "pretrained", "pretrained"
    SFT = "sft", "SFT"
    REWARD = "reward", "reward model"
    POLICY = "policy", "policy (DPO/RL)"


class Checkpoint(models.Model):
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=CheckpointKind.choices)
    path = models.CharField(max_length=500, help_text="Local directory with the weights (no hub downloads).")
    base = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
