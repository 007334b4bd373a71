"""``manage.py register_checkpoint NAME PATH --kind pretrained``: register a local model directory."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arbiter.errors import ApplicationError
from training.models import CheckpointKind
from training.services import checkpoint_register


class Command(BaseCommand):
    help = "Register a local model directory (full model or PEFT adapter) as a checkpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("path")
        parser.add_argument("--kind", choices=CheckpointKind.values, default=CheckpointKind.PRETRAINED)
        parser.add_argument("--base", default=None, help="name of the checkpoint this one was trained from")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            ckpt = checkpoint_register(
                name=options["name"], kind=options["kind"], path=options["path"], base_name=options["base"]
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"registered checkpoint {ckpt.name!r} ({ckpt.kind}, {ckpt.metadata['format']})")
