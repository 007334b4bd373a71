"""``manage.py import_tasks FILE --project ID_OR_SLUG``: import a JSONL task file (all lines or none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arbiter.errors import ValidationFailed
from labeling.models import Project
from labeling.services.imports import tasks_import


def project_lookup(value: str) -> Project:
    project = Project.objects.filter(pk=int(value)).first() if value.isdigit() else None
    project = project or Project.objects.filter(slug=value).first()
    if project is None:
        raise CommandError(f"no project with id or slug {value!r}")
    return project


class Command(BaseCommand):
    help = "Import tasks from a JSONL file into a project. On any bad line nothing is imported."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path to a .jsonl file, or - for standard input")
        parser.add_argument("--project", required=True, help="project id or slug")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_lookup(options["project"])
        name = options["file"]
        try:
            if name == "-":
                import sys

                result = tasks_import(project=project, lines=sys.stdin.buffer)
            else:
                path = Path(name)
                if not path.is_file():
                    raise CommandError(f"{name}: no such file")
                with path.open("rb") as fh:
                    result = tasks_import(project=project, lines=fh)
        except ValidationFailed as exc:
            errors = (exc.details or {}).get("errors", [])
            for err in errors:
                self.stderr.write(f"{name}:{err['line']}: {err['message']}")
            if (exc.details or {}).get("truncated"):
                self.stderr.write("(stopped after the first 1000 errors)")
            raise CommandError(f"nothing was imported: {len(errors)} bad line(s)") from None
        self.stdout.write(
            f"imported {result.created_tasks} tasks into {project.slug!r} "
            f"({result.duplicate_tasks} duplicates skipped, {result.imported_judgments} pre-labelled pairs, "
            f"{result.gold_tasks} gold)"
        )
