"""Class-conditional convolutional VAE (the reference student study's model, with residual blocks by default).

Encoder: a 3x3 stem, then `stages` downsampling stages; each stage holds `blocks_per_stage` bottleneck blocks of four
convolutions (1x1, 3x3, 3x3, 1x1 as in very deep VAEs) followed by a stride-2 convolution. Two MLP heads map the
flattened features (and, for a conditional model, a label embedding) to the mean and log-variance of q(z|x, y).
The label also goes through an embedding and an MLP whose output is added to z (or concatenated) before the decoder,
which mirrors the encoder. Images whose side is not a multiple of 2**stages (28 px at 3 stages) are zero-padded
inside the model and the output is cropped back, so every shape the user sees is the data's own.

All loss terms are in nats per image (summed over pixels and channels, averaged over the batch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.config import TrainConfig, VAEConfig
from core.models.adversarial import PatchDiscriminator, discriminator_hinge_loss, gan_optimizers, generator_terms
from core.models.optimizers import Optimizers, default_optimizers
from core.models.perceptual import PerceptualLoss


def pad_image(x: Tensor, size: int, padded_size: int) -> Tensor:
    """Zero-pad images of side `size` evenly to side `padded_size` (the model's multiple of 2**stages)."""
    p = padded_size - size
    return F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2)) if p else x


def crop_image(x: Tensor, size: int, padded_size: int) -> Tensor:
    """The centre `size` x `size` of images that pad_image padded to `padded_size`: the data's own shape again."""
    p = padded_size - size
    return x[..., p // 2:p // 2 + size, p // 2:p // 2 + size] if p else x


def embed_label(table: nn.Embedding, y: Tensor) -> Tensor:
    """Row y of `table`, or for class weights (B, K) the weighted sum of the rows: a blended label."""
    return y.to(table.weight.dtype) @ table.weight if y.is_floating_point() else table(y)


class Block(nn.Module):
    """Four convolutions, bottleneck style (1x1 down, 3x3, 3x3, 1x1 up), SiLU before each; residual optional."""

    def __init__(self, channels: int, *, residual: bool) -> None:
        super().__init__()
        mid = max(channels // 2, 8)
        self.residual = residual
        self.convs = nn.ModuleList([
            nn.Conv2d(channels, mid, 1), nn.Conv2d(mid, mid, 3, padding=1),
            nn.Conv2d(mid, mid, 3, padding=1), nn.Conv2d(mid, channels, 1),
        ])

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for conv in self.convs:
            h = conv(F.silu(h))
        return x + h if self.residual else h


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


class ConditionalVAE(nn.Module):
    """A class-conditional conv VAE; `num_classes == 0` makes it unconditional (then `y` may be None)."""

    kind = "vae"

    def __init__(self, cfg: VAEConfig, meta) -> None:
        super().__init__()
        self.cfg = cfg
        self.channels = int(meta.channels)
        self.image_size = int(meta.image_size)
        self.num_classes = int(meta.num_classes) if cfg.conditional else 0
        self.class_names = tuple(meta.class_names) if self.num_classes else ()
        self.latent_dim = cfg.latent_dim
        factor = 2 ** cfg.stages
        self.padded_size = -(-self.image_size // factor) * factor   # next multiple of 2**stages (28 -> 32)
        self.bottom = self.padded_size // factor                     # side of the innermost feature map
        widths = [cfg.width * min(2 ** s, 4) for s in range(cfg.stages + 1)]
        out_per_channel = 2 if cfg.likelihood == "discretized" else 1  # discretized logistic: mean and log-scale

        def blocks(c: int) -> list[nn.Module]:
            return [Block(c, residual=cfg.residual) for _ in range(cfg.blocks_per_stage)]

        enc: list[nn.Module] = [nn.Conv2d(self.channels, widths[0], 3, padding=1)]
        for s in range(cfg.stages):
            enc += blocks(widths[s])
            enc += [nn.SiLU(), nn.Conv2d(widths[s], widths[s + 1], 4, stride=2, padding=1)]
        self.encoder = nn.Sequential(*enc)
        flat = widths[-1] * self.bottom * self.bottom
        hidden = max(256, 2 * cfg.latent_dim)
        label_dim = 32 if self.num_classes else 0
        if self.num_classes:
            # q(z | x, y): the encoder heads see the label too, so z need not spend capacity on the class.
            self.enc_label = nn.Embedding(self.num_classes, label_dim)
            # The label's contribution to the decoder input (added to z, or concatenated with it).
            self.dec_label = nn.Sequential(nn.Embedding(self.num_classes, label_dim),
                                           _mlp(label_dim, 128, cfg.latent_dim))
        self.mu_head = _mlp(flat + label_dim, hidden, cfg.latent_dim)
        self.logvar_head = _mlp(flat + label_dim, hidden, cfg.latent_dim)

        z_in = cfg.latent_dim * (2 if cfg.conditioning == "concat" and self.num_classes else 1)
        self.dec_in = _mlp(z_in, hidden, flat)
        dec: list[nn.Module] = []
        for s in reversed(range(cfg.stages)):
            dec += [nn.SiLU(), nn.ConvTranspose2d(widths[s + 1], widths[s], 4, stride=2, padding=1)]
            dec += blocks(widths[s])
        dec += [nn.SiLU(), nn.Conv2d(widths[0], self.channels * out_per_channel, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        # Optional: the label also enters each decoder stage right after its upsampling, as a per-class bias per
        # channel ("bias") or a per-class scale and bias ("film"). Zero-initialised, so training starts from the
        # study's model, where the label reaches the decoder only through the latent.
        self.stage_labels = cfg.stage_labels if self.num_classes else "none"
        if self.stage_labels != "none":
            per = 2 if self.stage_labels == "film" else 1
            self.dec_stage_label = nn.ModuleList(
                [nn.Embedding(self.num_classes, per * widths[s]) for s in reversed(range(cfg.stages))])
        self._widths = widths
        self._init_weights()
        if cfg.likelihood == "gaussian":
            # One learned scale per channel: p(x|z) = N(x; mean(z), sigma_c^2), x in [0, 1].
            self.log_sigma = nn.Parameter(torch.full((self.channels,), math.log(0.1)))
        # VAE-GAN (core/models/adversarial.py): trained by its own optimiser, never averaged, never used to sample.
        self.discriminator = (PatchDiscriminator(self.channels, cfg.width) if cfg.adversarial_weight > 0 else None)
        # Perceptual term (core/models/perceptual.py): a plain object, so no VGG weights enter the state_dict.
        self.perceptual_loss = PerceptualLoss(cfg.perceptual) if cfg.perceptual != "none" else None

    def _init_weights(self) -> None:
        # He init keeps the activation scale through the unnormalised stack (PyTorch's default shrinks it by ~0.6 a
        # layer); without it the encoder's signal is so weak that the decoder learns to ignore z (posterior collapse).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for b in self.modules():
            if isinstance(b, Block) and b.residual:
                with torch.no_grad():
                    b.convs[-1].weight.mul_(0.1)   # residual branches start small: the stack starts near identity
        for head in (self.mu_head, self.logvar_head):
            with torch.no_grad():
                head[-1].weight.mul_(0.1)
        for emb in getattr(self, "dec_stage_label", ()):
            nn.init.zeros_(emb.weight)

    # ---------------------------------------------------------------- label helpers
    def _labels(self, y: Tensor | None, batch: int, device: torch.device) -> Tensor | None:
        """Class indices (B,) long, or class weights (B, num_classes) float (a blend of labels, for the decoder)."""
        if not self.num_classes:
            return None
        if y is None:
            raise ValueError("this VAE is class-conditional: pass the labels y")
        if y.is_floating_point() and y.dim() == 2:
            if y.shape != (batch, self.num_classes):
                raise ValueError(f"class weights must be ({batch}, {self.num_classes}), got {tuple(y.shape)}")
            return y.to(device=device)
        return y.to(device=device, dtype=torch.long).reshape(batch)

    def _dec_label(self, y: Tensor) -> Tensor:
        return self.dec_label[1](embed_label(self.dec_label[0], y))

    # ---------------------------------------------------------------- the public API
    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x, y), each (B, latent_dim); x float in [0, 1], (B, C, H, W)."""
        h = self.encoder(pad_image(x, self.image_size, self.padded_size)).flatten(1)
        y = self._labels(y, x.shape[0], x.device)
        if y is not None:
            h = torch.cat([h, self.enc_label(y).to(h.dtype)], dim=1)
        return self.mu_head(h).float(), self.logvar_head(h).float().clamp(-30.0, 20.0)

    def label_embedding(self, y: Tensor | None, batch: int | None = None) -> Tensor:
        """What the label contributes to the decoder input, (B, latent_dim); zeros for an unconditional model."""
        if not self.num_classes:
            n = batch if batch is not None else (0 if y is None else len(y))
            return torch.zeros(n, self.latent_dim, device=self.mu_head[0].weight.device)
        return self._dec_label(self._labels(y, len(y), self.mu_head[0].weight.device))

    @property
    def label_is_additive(self) -> bool:
        """The label enters as a vector added to z ("add" conditioning), so two labels can be blended."""
        return self.cfg.conditioning == "add"

    @property
    def latent_layers(self) -> tuple[tuple[str, int], ...]:
        """One stochastic layer: the whole latent vector."""
        return (("z", self.latent_dim),)

    def _decode_raw(self, z: Tensor, y: Tensor | None) -> Tensor:
        y = self._labels(y, z.shape[0], z.device)
        if y is not None:
            e = self._dec_label(y).to(z.dtype)
            z = torch.cat([z, e], dim=1) if self.cfg.conditioning == "concat" else z + e
        h = self.dec_in(z).view(z.shape[0], self._widths[-1], self.bottom, self.bottom)
        if self.stage_labels == "none":
            return crop_image(self.decoder(h), self.image_size, self.padded_size).float()
        stage = 0
        for layer in self.decoder:
            h = layer(h)
            if isinstance(layer, nn.ConvTranspose2d):    # the start of a decoder stage: add the label there
                h = self._stage_label(h, y, stage)
                stage += 1
        return crop_image(h, self.image_size, self.padded_size).float()

    def _stage_label(self, h: Tensor, y: Tensor, stage: int) -> Tensor:
        """Decoder stage `stage`'s features with the label added (a per-class bias) or applied (FiLM)."""
        e = embed_label(self.dec_stage_label[stage], y).to(h.dtype)[:, :, None, None]
        if self.stage_labels == "film":
            scale, shift = e.chunk(2, dim=1)
            return h * (1 + scale) + shift
        return h + e

    def _mean(self, raw: Tensor) -> Tensor:
        if self.cfg.likelihood == "discretized":
            return ((raw[:, :self.channels] + 1) / 2).clamp(0, 1)
        return torch.sigmoid(raw)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The mean image of p(x | z, y), float in [0, 1], (B, C, H, W). y: class indices (B,), or class weights
        (B, num_classes) that blend the label embeddings (every conditioning path: input, stages)."""
        return self._mean(self._decode_raw(z, y))

    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Decode the posterior mean of x: a deterministic reconstruction in [0, 1]."""
        mu, _ = self.encode(x, y)
        return self.decode(mu, y)

    @torch.no_grad()
    def sample(self, labels: Tensor, *, temperature: float = 1.0, generator: torch.Generator | None = None,
               z: Tensor | None = None) -> Tensor:
        """Images for `labels` (B,) from z ~ N(0, temperature^2 I) (or the given z), float in [0, 1], (B, C, H, W)."""
        device = self.mu_head[0].weight.device
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if z is None:
            gen_device = generator.device if generator is not None else device
            z = torch.randn(len(labels), self.latent_dim, generator=generator, device=gen_device)
            z = z * temperature
        return self.decode(z.to(device, torch.float32), labels.to(device) if self.num_classes else None)

    def kl_per_dim(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Batch-mean KL(q(z|x,y) || N(0, I)) of each latent dimension, (latent_dim,), nats."""
        mu, logvar = self.encode(x, y)
        return gaussian_kl(mu, logvar).mean(0)

    def log_likelihood(self, x: Tensor, z: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x | z, y) per image (B,), nats, under the model's own likelihood (bernoulli, gaussian, discretized)."""
        return -self.recon_nll(self._decode_raw(z, y), x)

    def recon_nll(self, raw: Tensor, x: Tensor) -> Tensor:
        """-log p(x | z) per image (B,), nats, from the decoder's raw output."""
        lik = self.cfg.likelihood
        if lik == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(raw, x, reduction="none")
        elif lik == "gaussian":
            log_sigma = self.log_sigma.clamp(min=-7.0).view(1, -1, 1, 1)
            mean = torch.sigmoid(raw)
            nll = 0.5 * ((x - mean) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)
        else:
            nll = _discretized_logistic_nll(x, raw[:, :self.channels], raw[:, self.channels:])
        return nll.flatten(1).sum(1)

    def loss(self, x: Tensor, y: Tensor | None = None, *, step: int = 0, with_kl_dims: bool = False
             ) -> dict[str, Tensor]:
        """The training objective and its terms, batch means of per-image values (nats unless stated).

        loss: the scalar to minimise: recon + beta_eff * KL (with free bits, the KL of each dimension's batch mean
              counts at least `free_bits`).
        recon: -log p(x | z) with z ~ q(z | x, y), the reconstruction term.
        kl: KL(q(z | x, y) || N(0, I)), the rate (true value, without free bits).
        elbo: -(recon + kl), the evidence lower bound on log p(x | y) (higher is better).
        beta: the effective KL weight at this step (after warm-up); a number, not nats.
        bits_per_dim: -elbo / (C*H*W*ln 2), only for the discretized likelihood on 8-bit data.
        kl_dims: only with `with_kl_dims`: the batch-mean KL of each latent dimension, (latent_dim,), as `kl_per_dim`
              (saves the trainer's validation a second encoder pass).
        perceptual: only with `perceptual` set: the perceptual loss of the decoder's mean image against x (per image,
              not nats); loss adds `perceptual_weight` times it.
        """
        mu, logvar = self.encode(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self._objective(self._decode_raw(z, y), x, gaussian_kl(mu, logvar), step, with_kl_dims)

    def _objective(self, raw: Tensor, x: Tensor, kl_dims: Tensor, step: int, with_kl_dims: bool
                   ) -> dict[str, Tensor]:
        """`loss`'s dict from the decoder's raw output for a posterior sample and the KL of each latent dimension
        (B, D), nats: shared by every VAE whose rate is a sum of Gaussian KLs (the hierarchical one too)."""
        recon = self.recon_nll(raw, x.float())
        kl = kl_dims.sum(1)
        cfg = self.cfg
        beta = cfg.beta * (min(1.0, step / cfg.kl_warmup_steps) if cfg.kl_warmup_steps else 1.0)
        if cfg.free_bits > 0:
            kl_term = kl_dims.mean(0).clamp(min=cfg.free_bits).sum()
        else:
            kl_term = kl.mean()
        recon_m, kl_m = recon.mean(), kl.mean()
        elbo = -(recon_m + kl_m)
        out = {"loss": recon_m + beta * kl_term, "recon": recon_m, "kl": kl_m, "elbo": elbo,
               "beta": torch.tensor(beta, device=x.device)}
        if cfg.likelihood == "discretized":
            out["bits_per_dim"] = -elbo / (x[0].numel() * math.log(2))
        if with_kl_dims:
            out["kl_dims"] = kl_dims.mean(0)
        if self.perceptual_loss is not None:
            self._add_perceptual_term(out, raw, x)
        if self.discriminator is not None:
            self._add_adversarial_terms(out, raw, step)
        return out

    def _add_perceptual_term(self, out: dict[str, Tensor], raw: Tensor, x: Tensor) -> None:
        """The perceptual loss of the mean image decoded from `raw` against x, logged as "perceptual" and added to
        out["loss"] with its weight; recon and the ELBO keep their meaning."""
        out["perceptual"] = self.perceptual_loss(self._mean(raw), x.float()).mean()
        out["loss"] = out["loss"] + self.cfg.perceptual_weight * out["perceptual"]

    # ---------------------------------------------------------------- VAE-GAN (AdversarialModel)
    def _add_adversarial_terms(self, out: dict[str, Tensor], raw: Tensor, step: int) -> None:
        """The generator's adversarial term on the reconstructions decoded from `raw`, added to out["loss"]."""
        adv = generator_terms(self.discriminator, self._mean(raw), out["recon"], self.decoder[-1].weight,
                              weight=self.cfg.adversarial_weight, active=step >= self.cfg.adversarial_start)
        out["loss"] = out["loss"] + adv.pop("term")
        out.update(adv)

    def _sampled_raw(self, x: Tensor, y: Tensor | None) -> Tensor:
        """The decoder's raw output for one posterior sample z ~ q(z | x, y)."""
        mu, logvar = self.encode(x, y)
        return self._decode_raw(mu + torch.randn_like(mu) * (0.5 * logvar).exp(), y)

    def configure_optimizers(self, train_cfg: TrainConfig) -> Optimizers:
        """One Adam over all the weights; a VAE-GAN's discriminator gets one of its own (`gan_optimizers`)."""
        if self.discriminator is None:
            return default_optimizers(self, train_cfg)
        return gan_optimizers(self, self.discriminator, self.discriminator_loss, train_cfg)

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """The discriminator's weights (its own optimiser's); empty when adversarial training is off."""
        return [] if self.discriminator is None else list(self.discriminator.parameters())

    def discriminator_loss(self, x: Tensor, y: Tensor | None = None, *, step: int = 0) -> dict[str, Tensor]:
        """The discriminator's hinge loss on real x against reconstructions from a posterior sample; zeros without a
        gradient before `adversarial_start` (then the trainer skips its step)."""
        active = self.discriminator is not None and step >= self.cfg.adversarial_start
        if not active:
            zero = torch.zeros((), device=x.device)
            return {"d_loss": zero, "d_real": zero, "d_fake": zero}
        with torch.no_grad():
            fake = self._mean(self._sampled_raw(x, y))
        return discriminator_hinge_loss(self.discriminator, x, fake, active=True)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-dimension KL(N(mu, exp(logvar)) || N(0, 1)) in nats, same shape as mu: the one place it is written."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def _discretized_logistic_nll(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """-log P(x) of 8-bit pixels under a logistic discretized to 256 bins (PixelCNN++ style), elementwise, nats.

    x in [0, 1] on the grid k/255; it is mapped to [-1, 1] where each bin is 2/255 wide; the edge bins take the tails.
    """
    x = x * 2 - 1
    log_scale = log_scale.clamp(min=-7.0)
    centered = x - mean
    inv_s = torch.exp(-log_scale)
    plus_in = inv_s * (centered + 1.0 / 255)
    min_in = inv_s * (centered - 1.0 / 255)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    log_cdf_plus = plus_in - F.softplus(plus_in)          # log P(x <= upper edge), for the 0 bin
    log_one_minus_cdf_min = -F.softplus(min_in)           # log P(x > lower edge), for the 255 bin
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in) - math.log(127.5)  # when the bin mass underflows
    log_mid = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
    log_p = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_mid))
    return -log_p
