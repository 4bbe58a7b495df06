"""The model folder: model.safetensors, config.json, tokenizer.json, train_log.jsonl, checkpoint.pt.

Every file is written to a temporary name and renamed into place.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from clipcurate.pipeline.clip.model import Clip, ClipConfig
from clipcurate.pipeline.clip.text import ClipTokenizer
from clipcurate.pipeline.files import atomic_path, atomic_write_text

KIND = "clipcurate-bootstrap-clip"
WEIGHTS, CONFIG, TOKENIZER, LOG, CHECKPOINT = (
    "model.safetensors", "config.json", "tokenizer.json", "train_log.jsonl", "checkpoint.pt")


def save_model(model_dir, model: Clip, tokenizer: ClipTokenizer, labels: list[str]) -> None:
    """Weights, config and tokenizer; the tokenizer first, the config last."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(model_dir / TOKENIZER)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(model_dir / WEIGHTS) as tmp:
        save_file(state, tmp)
    config = {"kind": KIND, "clip": model.config.to_dict(), "labels": list(labels)}
    atomic_write_text(model_dir / CONFIG, json.dumps(config, indent=2) + "\n")


def is_model_dir(path) -> bool:
    path = Path(path)
    return (path / CONFIG).is_file() and (path / WEIGHTS).is_file() and (path / TOKENIZER).is_file()


def read_config(model_dir) -> dict:
    data = json.loads((Path(model_dir) / CONFIG).read_text(encoding="utf-8"))
    if data.get("kind") != KIND:
        raise ValueError(f"{model_dir}/{CONFIG} is not a clipcurate bootstrap CLIP config")
    return data


def load_model(model_dir, device: str = "cpu") -> tuple[Clip, ClipTokenizer, list[str]]:
    """(model in eval mode on ``device``, tokenizer, seed labels) from a model folder."""
    model_dir = Path(model_dir)
    if not is_model_dir(model_dir):
        raise ValueError(f"{model_dir} is not a model folder ({CONFIG}, {WEIGHTS}, {TOKENIZER})")
    data = read_config(model_dir)
    config = ClipConfig.from_dict(data["clip"])
    model = Clip(config)
    model.load_state_dict(load_file(str(model_dir / WEIGHTS)))
    tokenizer = ClipTokenizer.load(model_dir / TOKENIZER, config.context_length)
    return model.to(device).eval(), tokenizer, list(data.get("labels", []))


def save_checkpoint(model_dir, state: dict) -> None:
    path = Path(model_dir) / CHECKPOINT
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(model_dir) -> Optional[dict]:
    path = Path(model_dir) / CHECKPOINT
    if not path.is_file():
        return None
    try:  # weights_only: tensors, numbers, strings and containers; a pickled object that would run code is refused
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path} is not a training checkpoint we wrote (it holds objects other than tensors "
                         f"and plain values: {str(err).splitlines()[0][:200]}); remove it or use --no-resume") from None


def append_log(model_dir, record: dict) -> None:
    """Add one line to train_log.jsonl (rewritten whole, atomically)."""
    path = Path(model_dir) / LOG
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    atomic_write_text(path, old + json.dumps(record) + "\n")


def trim_log(model_dir, phase: str, last_epoch: int) -> None:
    """Drop log lines of ``phase`` after ``last_epoch`` (written before an interrupted checkpoint)."""
    path = Path(model_dir) / LOG
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    keep = [l for l in lines if not (json.loads(l).get("phase") == phase and json.loads(l).get("epoch", 0) > last_epoch)]
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(l + "\n" for l in keep))
