"""Forms that parse the manager pages' input. They only parse and shape: the services validate and write."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from labeling.exports import formats
from labeling.models import Project, Role, TaskKind


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=100, required=False, help_text="Optional; made from the name when empty.")
    task_kind = forms.ChoiceField(choices=TaskKind.choices, initial=TaskKind.PAIRWISE)
    guidelines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text="Markdown. Shown to annotators above every task.",
    )
    overlap = forms.IntegerField(min_value=1, max_value=50, initial=1, help_text="Judgments wanted per task.")
    lease_seconds = forms.IntegerField(
        min_value=10, max_value=86400, initial=600, help_text="How long a served task is reserved for its annotator."
    )
    gold_rate = forms.FloatField(
        min_value=0, max_value=1, initial=0.0, help_text="Share of served tasks that are gold (0 to 1)."
    )
    allow_tie = forms.BooleanField(required=False, initial=True, label="Allow ties")
    allow_both_bad = forms.BooleanField(required=False, initial=True, label="Allow “both / all bad”")
    strength_enabled = forms.BooleanField(required=False, initial=True, label="Ask for strength of preference")
    strength_min = forms.IntegerField(required=False, initial=1)
    strength_max = forms.IntegerField(required=False, initial=3)
    criteria_required = forms.BooleanField(required=False, label="Every criterion must be scored")
    rationale_required = forms.BooleanField(required=False, label="A written rationale is required")
    flags = forms.CharField(
        required=False,
        initial="unsafe, factual_error, prompt_problem",
        help_text="Comma-separated lower_snake_case names annotators can tick.",
    )
    completions_per_task = forms.IntegerField(
        required=False, min_value=0, max_value=8, help_text="Ranking projects: 2 to 8. Leave empty for the default."
    )

    def __init__(self, *args: Any, creating: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.creating = creating
        if not creating:
            del self.fields["slug"]
            self.fields["task_kind"].help_text = "Cannot change once the project has tasks."

    def clean_flags(self) -> list[str]:
        return [f for f in re.split(r"[\s,]+", self.cleaned_data.get("flags") or "") if f]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("strength_enabled"):
            for key in ("strength_min", "strength_max"):
                if data.get(key) is None:
                    self.add_error(key, "required when strength is asked for")
        return data

    def label_options(self, criteria: forms.BaseFormSet) -> dict[str, Any]:
        data = self.cleaned_data
        options: dict[str, Any] = {
            "allow_tie": data["allow_tie"],
            "allow_both_bad": data["allow_both_bad"],
            "strength_min": data["strength_min"] if data["strength_enabled"] else None,
            "strength_max": data["strength_max"] if data["strength_enabled"] else None,
            "criteria": criteria_list(criteria),
            "criteria_required": data["criteria_required"],
            "rationale_required": data["rationale_required"],
            "flags": data["flags"],
        }
        if data.get("completions_per_task") is not None:
            options["completions_per_task"] = data["completions_per_task"]
        return options

    def service_kwargs(self, criteria: forms.BaseFormSet) -> dict[str, Any]:
        """The keyword arguments of project_create / project_update."""
        data = self.cleaned_data
        kwargs = {
            "name": data["name"],
            "task_kind": data["task_kind"],
            "guidelines": data["guidelines"],
            "overlap": data["overlap"],
            "lease_seconds": data["lease_seconds"],
            "gold_rate": data["gold_rate"],
            "label_options": self.label_options(criteria),
        }
        if self.creating:
            kwargs["slug"] = data.get("slug") or ""
        return kwargs


class CriterionForm(forms.Form):
    name = forms.CharField(max_length=40, required=False, help_text="lower_snake_case")
    label = forms.CharField(max_length=100, required=False)
    min = forms.IntegerField(required=False, initial=1)
    max = forms.IntegerField(required=False, initial=5)
    description = forms.CharField(max_length=500, required=False)


CriterionFormSet = forms.formset_factory(CriterionForm, extra=2, can_delete=True, max_num=20)


def criteria_list(formset: forms.BaseFormSet) -> list[dict[str, Any]]:
    out = []
    for form in formset.forms:
        data = getattr(form, "cleaned_data", None) or {}
        if not data.get("name") or data.get("DELETE"):
            continue
        item: dict[str, Any] = {"name": data["name"].strip()}
        for key in ("label", "description"):
            if data.get(key):
                item[key] = data[key]
        for key in ("min", "max"):
            if data.get(key) is not None:
                item[key] = data[key]
        out.append(item)
    return out


def project_initial(project: Project) -> dict[str, Any]:
    options = project.label_options or {}
    return {
        "name": project.name,
        "task_kind": project.task_kind,
        "guidelines": project.guidelines,
        "overlap": project.overlap,
        "lease_seconds": project.lease_seconds,
        "gold_rate": project.gold_rate,
        "allow_tie": options.get("allow_tie", True),
        "allow_both_bad": options.get("allow_both_bad", True),
        "strength_enabled": options.get("strength_min") is not None,
        "strength_min": options.get("strength_min"),
        "strength_max": options.get("strength_max"),
        "criteria_required": options.get("criteria_required", False),
        "rationale_required": options.get("rationale_required", False),
        "flags": ", ".join(options.get("flags", [])),
        "completions_per_task": options.get("completions_per_task"),
    }


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


OPTION_LABELS: dict[str, tuple[str, dict[Any, str]]] = {
    "style": ("Style", {"standard": "standard (text)", "conversational": "conversational (messages)"}),
    "ties": ("Tied pairs", {"drop": "drop them", "both": "both orders", "keep": "keep, marked as ties"}),
    "include_margin": ("Margin column", {False: "no", True: "yes, from the strength"}),
}


def export_kind(task_kind: str) -> str:
    return formats.DEMONSTRATION if task_kind == TaskKind.DEMONSTRATION else formats.COMPARISON


def export_format_options(task_kind: str) -> dict[str, dict[str, list[str]]]:
    """For each format this project can export: its options and their allowed values (the first is the default)."""
    kind = export_kind(task_kind)
    out: dict[str, dict[str, list[str]]] = {}
    for name in formats.formats_for_kind(kind):
        spec = formats.FORMATS[name]
        allowed = spec.options if kind == formats.COMPARISON else {}
        out[name] = {key: [str(v).lower() for v in values] for key, values in allowed.items()}
    return out


class ExportForm(forms.Form):
    """The export download's query string (the export API parses it; this only renders the controls).

    The parameter names are the API's (labeling/api/exports.py): format, the format's options
    (style, ties, include_margin) and the filters (date_from, date_to, annotators, exclude_gold,
    min_agreement, split, source). The page's JS sends only the options the chosen format takes.
    """

    format = forms.ChoiceField(choices=[])
    style = forms.ChoiceField(choices=[(k, v) for k, v in OPTION_LABELS["style"][1].items()], label="Style")
    ties = forms.ChoiceField(choices=[(k, v) for k, v in OPTION_LABELS["ties"][1].items()], label="Tied pairs")
    include_margin = forms.ChoiceField(
        choices=[("false", "no"), ("true", "yes, from the strength")], label="Margin column"
    )
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")
    annotators = forms.CharField(required=False, help_text="Comma-separated usernames; empty for everyone.")
    exclude_gold = forms.BooleanField(required=False, initial=True, label="Exclude gold tasks")
    min_agreement = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="0 to 1. Keeps tasks whose annotators agree at least this much (needs 2+ judgments per task).",
    )
    split = forms.ChoiceField(choices=[("", "all"), ("train", "train"), ("eval", "eval")], required=False)
    source = forms.ChoiceField(
        choices=[("", "all"), ("human", "labelled here"), ("import", "imported")], required=False
    )

    def __init__(self, *args: Any, task_kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kind = export_kind(task_kind)
        format_field = self.fields["format"]
        assert isinstance(format_field, forms.ChoiceField)
        format_field.choices = [
            (name, f"{name} — {formats.FORMATS[name].description}") for name in formats.formats_for_kind(kind)
        ]
        if kind == formats.DEMONSTRATION:
            self.fields["format"].initial = "openai-sft"
            for key in ("style", "ties", "include_margin", "min_agreement"):
                del self.fields[key]
