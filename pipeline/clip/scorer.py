"""One scoring API over three kinds of CLIP: our bootstrap model, open_clip, Hugging Face.

``ClipScorer.load`` reads the model once (a Beam DoFn calls it in ``setup``);
``embed_images`` takes encoded image bytes, ``embed_texts`` captions, both
returning L2-normalized float32 rows; ``similarity`` is their row-wise cosine.

Specs: a bootstrap model folder (``clipcurate bootstrap`` output),
``open_clip:ARCH:/path/weights.pt`` or ``hf:/path/to/clip_dir``. The optional
packages are imported only for their spec; nothing is fetched from a hub.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from clipcurate.pipeline.clip.data import center_crop, decode_image, to_tensor


@dataclass(frozen=True)
class ScorerConfig:
    spec: str             # MODEL_DIR, "open_clip:ARCH:/path/weights.pt" or "hf:/path/to/clip_dir"
    device: str = "auto"  # auto -> cuda if available else cpu
    batch_size: int = 64

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("scorer batch size must be >= 1")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"scorer device must be auto, cpu or cuda, not {self.device!r}")


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("CUDA device asked for, but torch sees no CUDA device")
    return name


@dataclass
class _Backend:
    """What a loaded model provides: batch encoders returning unnormalized embeddings."""

    name: str
    encode_images: Callable[[list[bytes]], torch.Tensor]
    encode_texts: Callable[[list[str]], torch.Tensor]


class ClipScorer:
    def __init__(self, backend: _Backend, device: str, batch_size: int):
        self._backend = backend
        self.device = device
        self.batch_size = batch_size
        self.name = backend.name
        self.dim = int(self.embed_texts(["a"]).shape[1])

    @classmethod
    def load(cls, config: ScorerConfig) -> "ClipScorer":
        """Load the model named by ``config.spec``; ValueError with a one-line message when it cannot be."""
        device = _device(config.device)
        spec = config.spec
        if spec.startswith("open_clip:"):
            backend = _load_open_clip(spec[len("open_clip:"):], device)
        elif spec.startswith("hf:"):
            backend = _load_hf(spec[len("hf:"):], device)
        else:
            backend = _load_bootstrap(spec, device)
        return cls(backend, device, config.batch_size)

    def _embed(self, items: Sequence, encode) -> np.ndarray:
        chunks = []
        for start in range(0, len(items), self.batch_size):
            with torch.inference_mode():
                emb = encode(list(items[start:start + self.batch_size])).float()
                emb = torch.nn.functional.normalize(emb, dim=-1)
            chunks.append(emb.cpu().numpy().astype(np.float32))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), dtype=np.float32)

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Encoded images (jpg/png/webp bytes) -> (n, dim) float32, L2-normalized.
        ValueError when some bytes cannot be decoded."""
        return self._embed(images, self._backend.encode_images)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Captions -> (n, dim) float32, L2-normalized."""
        return self._embed([t or "" for t in texts], self._backend.encode_texts)

    def similarity(self, images: list[bytes], texts: list[str]) -> np.ndarray:
        """Cosine similarity of images[i] and texts[i], shape (n,)."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        return np.sum(self.embed_images(images) * self.embed_texts(texts), axis=1)


def _autocast(device: str):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()


def _load_bootstrap(path: str, device: str) -> _Backend:
    from clipcurate.pipeline.clip import store

    if not Path(path).is_dir():
        raise ValueError(f"CLIP model folder {path} does not exist "
                         "(expected a bootstrap model folder, open_clip:ARCH:WEIGHTS or hf:DIR)")
    if not store.is_model_dir(path):
        raise ValueError(f"{path} is not a bootstrap CLIP folder (needs {store.CONFIG}, {store.WEIGHTS}, {store.TOKENIZER})")
    model, tokenizer, _ = store.load_model(path, device)
    cfg = model.config

    def encode_images(batch: list[bytes]) -> torch.Tensor:
        pixels = to_tensor([center_crop(decode_image(b, 2 * cfg.image_size), cfg.image_size) for b in batch],
                           cfg.mean, cfg.std).to(device)
        with _autocast(device):
            return model.image_features(pixels)

    def encode_texts(batch: list[str]) -> torch.Tensor:
        tokens, lengths = tokenizer(batch)
        with _autocast(device):
            return model.text_features(tokens.to(device), lengths.to(device))

    return _Backend(f"bootstrap:{Path(path).name}", encode_images, encode_texts)


def _decode_pil(batch: list[bytes]):
    return [decode_image(b, 1024) for b in batch]


def _load_open_clip(rest: str, device: str) -> _Backend:
    arch, sep, weights = rest.partition(":")
    if not sep or not arch or not weights:
        raise ValueError(f"open_clip spec must be open_clip:ARCH:/path/weights.pt, got open_clip:{rest}")
    if not Path(weights).is_file():
        raise ValueError(f"open_clip weights file {weights} does not exist")
    try:
        import open_clip
    except ImportError:
        raise ValueError("open_clip spec needs the open-clip-torch package (pip install 'clipcurate[open_clip]')") from None
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights, device=device)
        tokenize = open_clip.get_tokenizer(arch)
    except (RuntimeError, ValueError, KeyError, OSError) as err:
        raise ValueError(f"cannot load open_clip model {arch} from {weights}: {str(err).splitlines()[0]}") from None
    model.eval()

    def encode_images(batch: list[bytes]) -> torch.Tensor:
        pixels = torch.stack([preprocess(im) for im in _decode_pil(batch)]).to(device)
        with _autocast(device):
            return model.encode_image(pixels)

    def encode_texts(batch: list[str]) -> torch.Tensor:
        with _autocast(device):
            return model.encode_text(tokenize(batch).to(device))

    return _Backend(f"open_clip:{arch}", encode_images, encode_texts)


def _features(out) -> torch.Tensor:
    """The projected embeddings: transformers 4 returns them as a tensor, 5 as the output's ``pooler_output``."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _load_hf(path: str, device: str) -> _Backend:
    if not Path(path).is_dir():
        raise ValueError(f"Hugging Face CLIP folder {path} does not exist")
    try:
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel
    except ImportError:
        raise ValueError("hf spec needs the transformers package (pip install 'clipcurate[hf]')") from None
    try:
        model = CLIPModel.from_pretrained(path, local_files_only=True).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        processor = CLIPImageProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"cannot load Hugging Face CLIP from {path}: {str(err).splitlines()[0]}") from None
    max_len = min(int(model.config.text_config.max_position_embeddings), int(getattr(tokenizer, "model_max_length", 77)))

    def encode_images(batch: list[bytes]) -> torch.Tensor:
        inputs = processor(images=_decode_pil(batch), return_tensors="pt")
        with _autocast(device):
            return _features(model.get_image_features(pixel_values=inputs["pixel_values"].to(device)))

    def encode_texts(batch: list[str]) -> torch.Tensor:
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        with _autocast(device):
            return _features(model.get_text_features(**{k: v.to(device) for k, v in inputs.items()}))

    return _Backend(f"hf:{Path(path).name}", encode_images, encode_texts)
