"""A class-conditional autoregressive prior over a VQ-VAE's code grid: a small causal transformer.

The grid (h, w) of code indices is read in raster order as a sequence of T = h*w tokens; token t is predicted from
the class and the tokens before it (van den Oord et al. 2017 used a gated PixelCNN; at 4x4 to 7x7 grids a causal
transformer is as small and simpler). The sequence starts with a learned start vector plus the class embedding, so
the first code is already drawn for the class. `nll` is -log p(codes | y) per grid in nats; `sample` draws a grid
token by token (T forward passes: at most 49 for the presets' grids, no cache needed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CodePrior(nn.Module):
    """p(codes | y) = prod_t p(c_t | c_<t, y) over a (grid, grid) code grid of `codebook_size` codes."""

    def __init__(self, *, codebook_size: int, grid: tuple[int, int], num_classes: int, width: int, layers: int,
                 heads: int, dropout: float) -> None:
        super().__init__()
        assert width % heads == 0, "width must be a multiple of heads"
        self.codebook_size = codebook_size
        self.grid = grid
        self.length = grid[0] * grid[1]
        self.num_classes = num_classes
        self.token = nn.Embedding(codebook_size, width)
        self.position = nn.Parameter(torch.zeros(self.length, width))
        self.start = nn.Parameter(torch.zeros(width))
        self.label = nn.Embedding(num_classes, width) if num_classes else None
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, codebook_size)
        nn.init.normal_(self.position, std=0.02)
        nn.init.normal_(self.token.weight, std=0.02)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(self.length),
                             persistent=False)

    def _logits(self, codes: Tensor, y: Tensor | None) -> Tensor:
        """Logits (B, T', K) of tokens 0..T'-1 given `codes` (B, T'-1) before them (T' <= T)."""
        b, n = codes.shape[0], codes.shape[1] + 1
        h = torch.cat([self.start.expand(b, 1, -1), self.token(codes)], dim=1) + self.position[:n]
        if self.label is not None:
            if y is None:
                raise ValueError("this code prior is class-conditional: pass the labels y")
            h = h + self.label(y.long().reshape(b))[:, None]
        h = self.blocks(h, mask=self.causal[:n, :n].to(h.device), is_causal=True)
        return self.head(self.norm(h))

    def nll(self, codes: Tensor, y: Tensor | None = None) -> Tensor:
        """-log p(codes | y) per grid (B,), nats; codes (B, h, w) long."""
        flat = codes.reshape(codes.shape[0], -1).long()
        logits = self._logits(flat[:, :-1], y)
        return F.cross_entropy(logits.transpose(1, 2), flat, reduction="none").sum(1)

    @torch.no_grad()
    def sample(self, y: Tensor | None, batch: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """Code grids (B, h, w) long drawn token by token; temperature 0 takes the most likely code."""
        device = self.head.weight.device
        codes = torch.zeros(batch, 0, dtype=torch.long, device=device)
        for _ in range(self.length):
            logits = self._logits(codes, y)[:, -1].float()
            if temperature <= 0:
                nxt = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                gen_device = generator.device if generator is not None else device
                nxt = torch.multinomial(probs.to(gen_device), 1, generator=generator).reshape(-1).to(device)
            codes = torch.cat([codes, nxt[:, None]], dim=1)
        return codes.reshape(batch, *self.grid)
