"""VQ-VAE (van den Oord et al. 2017): images <-> a grid of discrete codes, with a class-conditional code prior.

Encoder: a 3x3 stem, `stages` residual stages each ending in a stride-2 convolution, a 1x1 projection to `code_dim`;
each of the (grid, grid) vectors is replaced by its nearest codebook entry. The decoder mirrors the encoder and sees
only the codes (the class lives in the codes and in the prior, so restoring an image needs no label).

The codebook is not trained by gradients: its entries follow exponential moving averages of the encoder outputs
assigned to them (Razavi et al. 2019), and a code whose average use falls below `restart_threshold` vectors per batch
is dead and re-seeded from a random encoder output of the batch (Dhariwal et al. 2020, Jukebox). The encoder is held
to its codes by the commitment loss; the decoder's gradient reaches it straight through the quantiser.

Training has two stages, each an ordinary run of the Trainer: `stage="codes"` trains this autoencoder; then
`stage="prior"` freezes it (weights loaded from `first_stage`, see core/training/second_stage.py) and trains the
autoregressive prior over its code grids (core/models/code_prior.py). A checkpoint of the second stage holds both; one
of the first stage has no prior, and `sample` then draws each cell's code independently from the codebook's use
(a preview while training, not a generator).

Images are padded to a multiple of 2**stages inside the model and cropped back, as in the VAE.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.config import VQVAEConfig
from core.errors import UserError
from core.models.code_prior import CodePrior
from core.models.vae import Block


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation with an EMA codebook and dead-code restarts (all state in buffers)."""

    def __init__(self, codebook_size: int, dim: int, *, decay: float, restarts: bool, threshold: float) -> None:
        super().__init__()
        self.codebook_size, self.dim, self.decay = codebook_size, dim, decay
        self.restarts, self.threshold = restarts, threshold
        self.register_buffer("embedding", torch.randn(codebook_size, dim))
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", self.embedding.clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.register_buffer("restarted", torch.zeros((), dtype=torch.long))   # codes re-seeded in the whole run

    def nearest(self, z: Tensor) -> Tensor:
        """Index of the nearest code of each row of z (N, dim)."""
        d = z.pow(2).sum(1, keepdim=True) - 2 * z @ self.embedding.t() + self.embedding.pow(2).sum(1)[None]
        return d.argmin(1)

    def forward(self, z: Tensor, *, update: bool) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """z (N, dim) -> (its codes' vectors with the straight-through gradient, the indices (N,), stats).
        `update`: move the codebook (training) and restart dead codes."""
        z = z.float()
        if update:
            self._initialise(z)
        idx = self.nearest(z.detach())
        counts = torch.bincount(idx, minlength=self.codebook_size).float()
        if update:
            self._ema_update(z.detach(), idx, counts)
        q = self.embedding[idx]
        commit = F.mse_loss(z, q.detach())
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs.clamp(min=1e-10))).sum())
        stats = {"commitment": commit, "perplexity": perplexity,
                 "usage": (counts > 0).float().mean()}
        return z + (q - z).detach(), idx, stats

    @torch.no_grad()
    def _initialise(self, z: Tensor) -> None:
        """The first training batch seeds the codebook with its own encoder outputs (random rows)."""
        if bool(self.initialised):
            return
        rows = z[torch.randint(len(z), (self.codebook_size,), device=z.device)]
        self.embedding.copy_(rows)
        self.cluster_size.fill_(max(self.threshold, 1e-3))
        self.embed_sum.copy_(rows * self.cluster_size[:, None])
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, z: Tensor, idx: Tensor, counts: Tensor) -> None:
        d = self.decay
        self.cluster_size.mul_(d).add_(counts, alpha=1 - d)
        summed = torch.zeros_like(self.embed_sum).index_add_(0, idx, z)
        self.embed_sum.mul_(d).add_(summed, alpha=1 - d)
        n = self.cluster_size.sum()
        eps = 1e-5   # Laplace smoothing: a code that lost all its vectors keeps a finite vector
        smoothed = (self.cluster_size + eps) / (n + self.codebook_size * eps) * n
        self.embedding.copy_(self.embed_sum / smoothed[:, None])
        if self.restarts:
            dead = self.cluster_size < self.threshold
            n_dead = int(dead.sum())
            if n_dead:
                # A re-seeded code sits at the threshold: re-seeded again at the next step unless it wins vectors.
                rows = z[torch.randint(len(z), (n_dead,), device=z.device)]
                self.embedding[dead] = rows
                self.embed_sum[dead] = rows * self.threshold
                self.cluster_size[dead] = self.threshold
                self.restarted.add_(n_dead)


class VQVAE(nn.Module):
    """A VQ-VAE with an optional class-conditional code prior; see the module docstring."""

    kind = "vqvae"

    def __init__(self, cfg: VQVAEConfig, meta) -> None:
        super().__init__()
        self.cfg = cfg
        self.channels = int(meta.channels)
        self.image_size = int(meta.image_size)
        self.num_classes = int(meta.num_classes) if cfg.conditional else 0
        self.class_names = tuple(meta.class_names) if self.num_classes else ()
        self.codebook_size = cfg.codebook_size
        factor = 2 ** cfg.stages
        self.padded_size = -(-self.image_size // factor) * factor
        self.grid = self.padded_size // factor
        widths = [cfg.width * min(2 ** s, 4) for s in range(cfg.stages + 1)]

        def blocks(c: int) -> list[nn.Module]:
            return [Block(c, residual=True) for _ in range(cfg.blocks_per_stage)]

        enc: list[nn.Module] = [nn.Conv2d(self.channels, widths[0], 3, padding=1)]
        for s in range(cfg.stages):
            enc += blocks(widths[s])
            enc += [nn.SiLU(), nn.Conv2d(widths[s], widths[s + 1], 4, stride=2, padding=1)]
        enc += blocks(widths[-1]) + [nn.SiLU(), nn.Conv2d(widths[-1], cfg.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.code_dim, widths[-1], 3, padding=1), *blocks(widths[-1])]
        for s in reversed(range(cfg.stages)):
            dec += [nn.SiLU(), nn.ConvTranspose2d(widths[s + 1], widths[s], 4, stride=2, padding=1)]
            dec += blocks(widths[s])
        dec += [nn.SiLU(), nn.Conv2d(widths[0], self.channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
            if isinstance(m, Block):
                with torch.no_grad():
                    m.convs[-1].weight.mul_(0.1)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, decay=cfg.codebook_decay,
                                         restarts=cfg.restarts, threshold=cfg.restart_threshold)
        # The prior exists in the second stage only: a first-stage checkpoint holds no prior weights.
        self.prior: CodePrior | None = None
        if cfg.stage == "prior":
            self.prior = CodePrior(codebook_size=cfg.codebook_size, grid=(self.grid, self.grid),
                                   num_classes=self.num_classes, width=cfg.prior_width, layers=cfg.prior_layers,
                                   heads=cfg.prior_heads, dropout=cfg.prior_dropout)
            # The first stage is frozen: only the prior's weights get gradients (and an optimiser state).
            for p in self.first_stage_parameters():
                p.requires_grad_(False)

    # ---------------------------------------------------------------- shape helpers
    def _pad(self, x: Tensor) -> Tensor:
        p = self.padded_size - self.image_size
        return F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2)) if p else x

    def _crop(self, x: Tensor) -> Tensor:
        p = self.padded_size - self.image_size
        return x[..., p // 2:p // 2 + self.image_size, p // 2:p // 2 + self.image_size] if p else x

    def _device(self) -> torch.device:
        return self.quantizer.embedding.device

    @property
    def codebook(self) -> Tensor:
        """The code vectors (codebook_size, code_dim): what a code index stands for (the latent map projects them)."""
        return self.quantizer.embedding

    # ---------------------------------------------------------------- stages
    @property
    def has_prior(self) -> bool:
        """True for a second-stage model: its code prior draws the codes `sample` decodes."""
        return self.prior is not None

    @property
    def first_stage(self) -> str | None:
        """The checkpoint of the frozen VQ-VAE this run's prior is fitted to; None when the run trains the VQ-VAE."""
        return self.cfg.first_stage if self.cfg.stage == "prior" else None

    def first_stage_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("prior.")]

    def first_stage_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """The first stage's entries of a state dict (everything but the prior's)."""
        return {k: v for k, v in state.items() if not k.startswith("prior.")}

    def load_first_stage(self, state: dict[str, Tensor], source_config: VQVAEConfig) -> None:
        """Load a first-stage checkpoint's weights (its config `source_config`); UserError when it is another
        architecture."""
        mine = {k: getattr(self.cfg, k) for k in _ARCHITECTURE}
        theirs = {k: getattr(source_config, k) for k in _ARCHITECTURE}
        if mine != theirs:
            diff = ", ".join(f"{k} {theirs[k]} (this run: {mine[k]})" for k in _ARCHITECTURE if mine[k] != theirs[k])
            raise UserError(f"the first stage {self.cfg.first_stage} is another VQ-VAE: {diff}; fit the prior with "
                            "the first stage's own model settings (`train --prior-of` takes them)")
        missing, unexpected = self.load_state_dict(self.first_stage_state(state), strict=False)
        if unexpected or any(not k.startswith("prior.") for k in missing):
            raise UserError(f"the first stage {self.cfg.first_stage} does not hold this VQ-VAE's weights; the "
                            "checkpoint is damaged")
        if not bool(self.quantizer.initialised):
            raise UserError(f"the first stage {self.cfg.first_stage} has an untrained codebook; train the VQ-VAE for "
                            "at least one step before fitting its prior")

    def train(self, mode: bool = True) -> VQVAE:
        """A second stage keeps the frozen first stage in eval mode (its codebook never moves)."""
        super().train(mode)
        if self.prior is not None:
            for name, child in self.named_children():
                if name != "prior":
                    child.train(False)
        return self

    # ---------------------------------------------------------------- codes
    def _encode_vectors(self, x: Tensor) -> Tensor:
        """Encoder outputs (B, grid, grid, code_dim)."""
        return self.encoder(self._pad(x)).permute(0, 2, 3, 1)

    @torch.no_grad()
    def encode_codes(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The code grid of each image (B, grid, grid) long; x float in [0, 1]. The label is not needed."""
        v = self._encode_vectors(x)
        return self.quantizer.nearest(v.reshape(-1, v.shape[-1]).float()).reshape(v.shape[:3])

    def _decode_raw(self, vectors: Tensor) -> Tensor:
        """Decoder logits (B, C, H, W) from code vectors (B, grid, grid, code_dim)."""
        return self._crop(self.decoder(vectors.permute(0, 3, 1, 2))).float()

    def decode_codes(self, codes: Tensor, y: Tensor | None = None) -> Tensor:
        """Images (B, C, H, W) in [0, 1] decoded from code grids (B, grid, grid) long."""
        codes = codes.to(self._device()).long()
        if codes.dim() != 3 or codes.shape[1:] != (self.grid, self.grid):
            raise ValueError(f"codes must be (B, {self.grid}, {self.grid}), got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in 0..{self.codebook_size - 1}")
        return torch.sigmoid(self._decode_raw(self.quantizer.embedding[codes]))

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """decode(encode(x)): the image through its nearest codes, in [0, 1]."""
        return self.decode_codes(self.encode_codes(x))

    def prior_nll(self, codes: Tensor, y: Tensor | None = None) -> Tensor:
        """-log p(codes | y) per image (B,), nats, under the code prior (UserError without one)."""
        if self.prior is None:
            raise UserError(_NO_PRIOR)
        return self.prior.nll(codes.to(self._device()), self._labels(y, codes.shape[0]))

    def _labels(self, y: Tensor | None, batch: int) -> Tensor | None:
        if not self.num_classes:
            return None
        if y is None:
            raise ValueError("this VQ-VAE's prior is class-conditional: pass the labels y")
        return y.to(self._device(), torch.long).reshape(batch)

    # ---------------------------------------------------------------- training and sampling
    def loss(self, x: Tensor, y: Tensor | None = None, *, step: int = 0) -> dict[str, Tensor]:
        """Stage codes: loss = BCE per pixel + commitment * |z_e - sg(e)|^2; recon in nats per image, codebook
        perplexity and usage (share of codes used) of this batch, restarts so far. Stage prior: loss = the prior's
        NLL in nats per image, bits_per_code (log2 of the codebook size = a uniform prior)."""
        if self.prior is not None:
            with torch.no_grad():
                codes = self.encode_codes(x)
            nll = self.prior.nll(codes, self._labels(y, x.shape[0])).mean()
            return {"loss": nll, "prior_nll": nll, "bits_per_code": nll / (codes[0].numel() * math.log(2))}
        v = self._encode_vectors(x)
        q, _, stats = self.quantizer(v.reshape(-1, v.shape[-1]), update=self.training)
        raw = self._decode_raw(q.reshape(v.shape).to(v.dtype))
        bce = F.binary_cross_entropy_with_logits(raw, x.float(), reduction="none").flatten(1).sum(1).mean()
        loss = bce / x[0].numel() + self.cfg.commitment * stats["commitment"]
        return {"loss": loss, "recon": bce, "mse": F.mse_loss(torch.sigmoid(raw), x.float()).detach(), **stats,
                "restarts": self.quantizer.restarted.float()}

    @torch.no_grad()
    def sample(self, labels: Tensor, *, temperature: float | None = None, generator: torch.Generator | None = None,
               codes: Tensor | None = None) -> Tensor:
        """Images for `labels` (B,) in [0, 1]: decoded code grids drawn from the prior at `temperature` (None: the
        config's sample_temperature), or the given `codes`. Without a prior (a first-stage model) each cell's code
        is drawn independently from the codebook's use."""
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        b = len(labels)
        temperature = self.cfg.sample_temperature if temperature is None else temperature
        if codes is None and self.prior is not None:
            codes = self.prior.sample(self._labels(labels, b), b, temperature=temperature, generator=generator)
        elif codes is None:
            use = self.quantizer.cluster_size.float().clamp(min=0)
            gen_device = generator.device if generator is not None else self._device()
            codes = torch.multinomial(use.to(gen_device), b * self.grid * self.grid, replacement=True,
                                      generator=generator).reshape(b, self.grid, self.grid)
        return self.decode_codes(codes)


# The settings that shape the first stage's weights: a prior run must have them as its first stage had them.
_ARCHITECTURE = ("codebook_size", "code_dim", "width", "stages", "blocks_per_stage")
_NO_PRIOR = ("this VQ-VAE has no code prior yet; train one on its codes with `vae-explorer train --prior-of "
             "CHECKPOINT`, then use that run's checkpoint")
