"""``manage.py snapshot --project ID_OR_SLUG --format trl [--name N] [options] [filters]``: a dataset snapshot.

Writes the next immutable version under ARTIFACTS_ROOT/snapshots/<project_id>/ and prints its id, version, row
count and sha256. ``--list`` lists the project's snapshots instead.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from arbiter.errors import ApplicationError
from labeling.exports.formats import FORMATS
from labeling.management.commands.export import add_export_arguments, export_spec_from_arguments
from labeling.management.commands.import_tasks import project_lookup
from labeling.selectors.exports import snapshot_file_path, snapshot_list
from labeling.services.snapshots import snapshot_create


class Command(BaseCommand):
    help = "Create an immutable, versioned dataset snapshot of a project (or list them with --list)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_export_arguments(parser, format_required=False)  # --list needs no format
        parser.add_argument("--name", default="", help="a label for the snapshot")
        parser.add_argument("--user", help="record this username as the snapshot's creator")
        parser.add_argument("--list", action="store_true", help="list the project's snapshots")

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("list"):
            self._list(project_lookup(str(options["project"])))
            return
        if options.get("format") not in FORMATS:
            raise CommandError(f"--format is required; choose one of {', '.join(FORMATS)}")
        spec = export_spec_from_arguments(options)
        user = None
        if options.get("user"):
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"--user: no user named {options['user']!r}")
        try:
            snapshot = snapshot_create(
                project=spec.project,
                created_by=user,
                format=spec.format,
                options=spec.options,
                filters=spec.filters,
                name=options["name"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"snapshot {snapshot.pk}: {spec.project.slug} v{snapshot.version} ({snapshot.format}), "
            f"{snapshot.row_count} rows, {snapshot.size_bytes} bytes, sha256 {snapshot.sha256}\n"
            f"{snapshot_file_path(snapshot=snapshot)}"
        )

    def _list(self, project: Any) -> None:
        for snapshot in snapshot_list(project=project):
            self.stdout.write(
                f"{snapshot.pk}\tv{snapshot.version}\t{snapshot.format}\t{snapshot.row_count} rows\t"
                f"{snapshot.created_at:%Y-%m-%d %H:%M}\t{snapshot.sha256[:12]}\t{snapshot.name}"
            )
