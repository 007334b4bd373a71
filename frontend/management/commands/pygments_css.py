from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from frontend.pygments_css import CSS_PATH, STYLE, pygments_css


class Command(BaseCommand):
    help = "Write frontend/static/frontend/pygments.css (code highlighting) from a Pygments style."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--style", default=STYLE)
        parser.add_argument("--check", action="store_true", help="fail if the committed file is out of date")

    def handle(self, *args: Any, **options: Any) -> None:
        css = pygments_css(options["style"])
        if options["check"]:
            current = CSS_PATH.read_text() if CSS_PATH.exists() else ""
            if current != css:
                raise CommandError(f"{CSS_PATH} is out of date: run manage.py pygments_css")
            self.stdout.write("pygments.css is up to date")
            return
        CSS_PATH.write_text(css)
        self.stdout.write(f"wrote {CSS_PATH}")
