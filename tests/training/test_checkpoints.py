"""Checkpoints are registered by local path; a completion can cite the checkpoint that generated it."""

from __future__ import annotations

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError
from transformers import LlamaConfig, LlamaForCausalLM

from arbiter.errors import Conflict, ValidationFailed
from labeling.models import Completion
from tests.factories import make_project, seed_tasks
from training.models import Checkpoint
from training.services import checkpoint_register

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_model_dir(tmp_path):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    path = tmp_path / "tiny"
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def test_register_a_local_model_and_cite_it_from_a_completion(tiny_model_dir):
    base = checkpoint_register(name="tiny-base", kind="pretrained", path=str(tiny_model_dir))
    assert base.metadata["format"] == "transformers"
    assert base.metadata["architectures"] == ["LlamaForCausalLM"]
    sft = checkpoint_register(name="tiny-sft", kind="sft", path=str(tiny_model_dir), base_name="tiny-base")
    assert sft.base == base
    project = make_project()
    seed_tasks(project, 1)
    completion = Completion.objects.first()
    completion.checkpoint = sft
    completion.save(update_fields=["checkpoint"])
    assert list(sft.completions.all()) == [completion]


def test_bad_registrations_say_what_is_wrong(tmp_path, tiny_model_dir):
    with pytest.raises(ValidationFailed, match="not a directory"):
        checkpoint_register(name="x", kind="pretrained", path=str(tmp_path / "missing"))
    with pytest.raises(ValidationFailed, match=r"no config\.json"):
        checkpoint_register(name="x", kind="pretrained", path=str(tmp_path))
    with pytest.raises(ValidationFailed, match="kind must be"):
        checkpoint_register(name="x", kind="magic", path=str(tiny_model_dir))
    checkpoint_register(name="x", kind="pretrained", path=str(tiny_model_dir))
    with pytest.raises(Conflict):
        checkpoint_register(name="x", kind="pretrained", path=str(tiny_model_dir))


def test_command(tiny_model_dir, capsys):
    call_command("register_checkpoint", "cli-model", str(tiny_model_dir), "--kind", "pretrained")
    assert "registered checkpoint 'cli-model'" in capsys.readouterr().out
    assert Checkpoint.objects.filter(name="cli-model").exists()
    with pytest.raises(CommandError, match="no checkpoint named"):
        call_command("register_checkpoint", "y", str(tiny_model_dir), "--base", "nope")
