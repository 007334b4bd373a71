"""``manage.py export --project ID_OR_SLUG --format trl --out FILE [options] [filters]``: write an export.

The rows are streamed from the database to the file (or to standard output with ``--out -``); a file is written
under a temporary name and renamed when complete, so a failed export leaves nothing half-written behind.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arbiter.errors import ValidationFailed
from labeling.exports.formats import FORMATS, RowCounter
from labeling.management.commands.import_tasks import project_lookup
from labeling.selectors.exports import ExportSpec, export_prepare, export_stream, export_write


def add_export_arguments(parser: CommandParser, *, format_required: bool = True) -> None:
    """The format, option and filter arguments shared by ``export`` and ``snapshot``."""
    parser.add_argument("--project", required=True, help="project id or slug")
    parser.add_argument(
        "--format",
        required=format_required,
        choices=list(FORMATS),
        help="; ".join(f"{name}: {spec.description}" for name, spec in FORMATS.items()),
    )
    opts = parser.add_argument_group("format options")
    opts.add_argument("--style", help="standard or conversational (trl, parquet, hf-dataset)")
    opts.add_argument("--ties", help="drop, both or keep: what to do with tied pairs")
    opts.add_argument("--include-margin", action="store_true", help="add a margin column from the strength")
    flt = parser.add_argument_group("filters")
    flt.add_argument("--date-from", help="judged at or after this ISO date or date-time")
    flt.add_argument("--date-to", help="judged at or before this ISO date (the whole day) or date-time")
    flt.add_argument("--annotator", action="append", default=[], help="only this annotator (repeatable)")
    flt.add_argument("--exclude-gold", action="store_true", help="leave gold tasks out")
    flt.add_argument("--min-agreement", help="only tasks whose agreement is at least this (0..1)")
    flt.add_argument("--split", help="train or eval")
    flt.add_argument("--source", help="human or import")


def export_spec_from_arguments(options: dict[str, Any]) -> ExportSpec:
    project = project_lookup(str(options["project"]))
    export_options: dict[str, Any] = {key: options[key] for key in ("style", "ties") if options.get(key) is not None}
    if options.get("include_margin"):
        export_options["include_margin"] = True
    filters: dict[str, Any] = {
        key: options[key]
        for key in ("date_from", "date_to", "min_agreement", "split", "source")
        if options.get(key) is not None
    }
    if options.get("annotator"):
        filters["annotators"] = options["annotator"]
    if options.get("exclude_gold"):
        filters["exclude_gold"] = True
    try:
        return export_prepare(project=project, format=options["format"], options=export_options, filters=filters)
    except ValidationFailed as exc:
        raise CommandError(exc.message) from None


class Command(BaseCommand):
    help = "Export a project's labelled data (preference pairs, demonstrations or raw judgments) to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        add_export_arguments(parser)
        parser.add_argument("--out", default="-", help="output file, or - for standard output (the default)")

    def handle(self, *args: Any, **options: Any) -> None:
        spec = export_spec_from_arguments(options)
        if options["out"] == "-":
            rows = self._to_stdout(spec)
            self.stderr.write(f"exported {rows} rows ({spec.format})")
            return
        target = Path(options["out"])
        if target.is_dir():
            raise CommandError(f"{target} is a folder; give a file name")
        if not target.parent.is_dir():
            raise CommandError(f"{target.parent}: no such folder")
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                rows = export_write(spec=spec, out=out)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self.stderr.write(f"exported {rows} rows ({spec.format}) to {target}")

    def _to_stdout(self, spec: ExportSpec) -> int:
        raw = getattr(self.stdout, "_out", sys.stdout)
        binary = getattr(raw, "buffer", None)
        if binary is not None:
            rows = export_write(spec=spec, out=binary)
            binary.flush()
            return rows
        if not spec.format_spec.streamable:
            raise CommandError(f"{spec.format} is binary: write it to a file with --out FILE")
        counter = RowCounter()
        for chunk in export_stream(spec=spec, counter=counter):
            self.stdout.write(chunk.decode("utf-8"), ending="")  # chunks hold whole rows, never part of a character
        return counter.count
