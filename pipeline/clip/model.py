"""A small CLIP in plain torch: ViT image tower, causal transformer text tower.

Both towers end in a linear projection into a shared space; embeddings are
L2-normalized, and a learnable temperature scales their cosine similarities.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipConfig:
    """The architecture, and what preprocessing and tokenization it expects."""

    image_size: int = 32
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 1
    vision_heads: int = 4
    text_width: int = 128
    text_layers: int = 1
    text_heads: int = 4
    context_length: int = 32
    vocab_size: int = 4096
    embed_dim: int = 128
    mlp_ratio: float = 4.0
    max_logit_scale: float = 100.0
    initial_temperature: float = 0.07
    stem: str = "conv"          # conv | linear (see patch_stem)
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self):
        if self.stem not in ("conv", "linear"):
            raise ValueError(f"stem must be conv or linear, not {self.stem!r}")
        if self.stem == "conv" and self.patch_size & (self.patch_size - 1):
            raise ValueError(f"a conv stem needs a power-of-two patch size, not {self.patch_size}")
        if self.vision_layers < 1 or self.text_layers < 1:
            raise ValueError("each tower needs at least 1 transformer layer")
        if self.image_size % self.patch_size:
            raise ValueError(f"image size {self.image_size} is not a multiple of patch size {self.patch_size}")
        for width, heads in ((self.vision_width, self.vision_heads), (self.text_width, self.text_heads)):
            if width % heads:
                raise ValueError(f"width {width} is not a multiple of {heads} heads")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ClipConfig":
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**values)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def attention(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        n, t, w = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(n, t, w))

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attention(self.ln_1(x), causal)
        return x + self.mlp(self.ln_2(x))


def patch_stem(c: ClipConfig) -> nn.Module:
    """Image -> one token per patch. "linear": one strided convolution (plain ViT);
    "conv": 3x3 convolutions with 2x2 max-pooling down to the patch grid (a ViT
    with a convolutional stem, which trains far faster from scratch on small data)."""
    if c.stem == "linear":
        return nn.Conv2d(3, c.vision_width, c.patch_size, stride=c.patch_size, bias=False)
    steps = int(math.log2(c.patch_size))
    layers, channels = [], 3
    for i in range(steps):
        out = max(32, c.vision_width >> (steps - 1 - i))
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(),
                   nn.MaxPool2d(2)]
        channels = out
    # a BatchNorm after the last (1x1) convolution centres the tokens: pooled ReLU
    # features share a large positive component (cosine ~0.8 between any two
    # images at initialization), and contrastive training first sat in a collapse
    # (every embedding alike) for several epochs before it learnt anything
    layers += [nn.Conv2d(channels, c.vision_width, 1, bias=False), nn.BatchNorm2d(c.vision_width)]
    return nn.Sequential(*layers)


class VisionTower(nn.Module):
    """Patch embedding + class token + positions, transformer, class-token output."""

    def __init__(self, c: ClipConfig):
        super().__init__()
        grid = c.image_size // c.patch_size
        self.patch = patch_stem(c)
        self.cls = nn.Parameter(torch.randn(c.vision_width) * c.vision_width ** -0.5)
        self.pos = nn.Parameter(torch.randn(grid * grid + 1, c.vision_width) * 0.02)
        self.ln_pre = nn.LayerNorm(c.vision_width)
        self.blocks = nn.ModuleList(Block(c.vision_width, c.vision_heads, c.mlp_ratio) for _ in range(c.vision_layers))
        self.ln_post = nn.LayerNorm(c.vision_width)
        self.proj = nn.Linear(c.vision_width, c.embed_dim, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # channels-last convolutions are about a quarter faster on CPU (oneDNN), same results
        x = self.patch(images.contiguous(memory_format=torch.channels_last)).flatten(2).transpose(1, 2)
        cls = self.cls.to(x.dtype).expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.pos.to(x.dtype))
        for block in self.blocks:
            x = block(x)
        # the class token plus the mean of the patch tokens: the mean gives the
        # translation invariance that small data cannot teach a class token alone
        return self.proj(self.ln_post(x[:, 0] + x[:, 1:].mean(dim=1)))


class TextTower(nn.Module):
    """Token + position embeddings, causal transformer, pooled at the end-of-text token."""

    def __init__(self, c: ClipConfig):
        super().__init__()
        self.token = nn.Embedding(c.vocab_size, c.text_width)
        self.pos = nn.Parameter(torch.randn(c.context_length, c.text_width) * 0.01)
        self.blocks = nn.ModuleList(Block(c.text_width, c.text_heads, c.mlp_ratio) for _ in range(c.text_layers))
        self.ln_final = nn.LayerNorm(c.text_width)
        self.proj = nn.Linear(c.text_width, c.embed_dim, bias=False)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``tokens`` (n, context) padded after the end token; ``lengths`` counts up to and including it."""
        # attention is causal and pooling masked, so the padding past the longest caption
        # changes nothing: drop it (captions are far shorter than the context)
        tokens = tokens[:, : int(lengths.max())]
        x = self.token(tokens) + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x, causal=True)
        x = self.ln_final(x)
        eot = x[torch.arange(x.shape[0], device=x.device), lengths - 1]
        # plus the mean over the caption's tokens: from scratch on little data, a bag of
        # words is learnt long before the end token learns to carry the whole caption
        valid = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
        mean = (x * valid[..., None]).sum(dim=1) / valid.sum(dim=1, keepdim=True)
        return self.proj(eot + mean)


class Clip(nn.Module):
    def __init__(self, config: ClipConfig):
        super().__init__()
        self.config = config
        self.visual = VisionTower(config)
        self.text = TextTower(config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / config.initial_temperature)))
        _init_tower(self.visual, config.vision_width, config.vision_layers)
        _init_tower(self.text, config.text_width, config.text_layers)
        nn.init.normal_(self.text.token.weight, std=0.02)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalized image embeddings."""
        return self.visual(images).float()

    def text_features(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Unnormalized text embeddings."""
        return self.text(tokens, lengths).float()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_features(images), dim=-1)

    def encode_text(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_features(tokens, lengths), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def forward(self, images, tokens, lengths):
        return self.encode_image(images), self.encode_text(tokens, lengths), self.scale()


def _init_tower(tower: nn.Module, width: int, layers: int) -> None:
    """CLIP's initialization: scales by width and depth, so the towers start
    with features that differ between inputs instead of collapsing to a constant."""
    attn_std, fc_std = width ** -0.5, (2 * width) ** -0.5
    out_std = width ** -0.5 * (2 * layers) ** -0.5
    for block in tower.blocks:
        nn.init.normal_(block.qkv.weight, std=attn_std)
        nn.init.normal_(block.out.weight, std=out_std)
        nn.init.normal_(block.mlp[0].weight, std=fc_std)
        nn.init.normal_(block.mlp[2].weight, std=out_std)
        for lin in (block.qkv, block.out, block.mlp[0], block.mlp[2]):
            nn.init.zeros_(lin.bias)
    nn.init.normal_(tower.proj.weight, std=width ** -0.5)


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, scale: torch.Tensor,
                     groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over the n x n similarity matrix.

    With ``groups`` (one id per pair), every pair in the batch sharing the
    row's group counts as a positive (targets spread evenly over them), so two
    images of the same seed label are not pushed apart.
    """
    logits = scale * image_emb @ text_emb.t()
    if groups is None:
        target = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    same = (groups[:, None] == groups[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    loss_i = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t = -(target * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return (loss_i + loss_t) / 2
