"""A small top-down hierarchical VAE (NVAE / VDVAE style): the plain VAE's top latent plus spatial latents at the
first decoder stages.

Layer z1 is the plain VAE's latent (a vector from the encoder's flattened features, prior N(0, I)). Each lower layer
z_k (k >= 2) is a `layer_channels` x r x r map at the input of decoder stage k-2 (r = the side there): its prior
comes from the decoder's features so far, p(z_k | z_<k) = N(mu_p, sigma_p^2), and its posterior also sees the
encoder's features at the same resolution, q(z_k | x, z_<k). The decoder adds a 1x1 projection of z_k to its features
and goes on.

The flat code the rest of the program sees is the standardised prior noise of every layer, eps_k with
z_k = mu_p(z_<k) + sigma_p(z_<k) * eps_k, concatenated top layer first (`latent_layers` names the slices). Its prior
is N(0, I) as for the plain VAE, `decode(eps)` is deterministic, and `sample` draws eps ~ N(0, T^2 I); so the latent
map, interpolation, traversal and the sampler work unchanged, and acting on one layer is acting on its slice. The
posterior is parameterised directly in eps-space: q(eps_k | x, z_<k) = N(m_k, exp(lv_k)), which makes each layer's
KL(q || p) the standard-normal KL of (m_k, lv_k) (the KL is invariant under the shared affine map to z_k).

`encode(x)` gives each layer's eps-space posterior with the layers above at their posterior means (the
deterministic pass that `reconstruct` decodes). The IWAE bound in core/evaluation uses that Gaussian as its proposal:
a proper density over the flat code, so the estimate stays a valid lower bound on log p(x) (looser than with the
exact hierarchical posterior, which would need the sampled upper layers).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.config import VAEConfig
from core.models.vae import ConditionalVAE, crop_image, gaussian_kl, pad_image

LOG_SIGMA_RANGE = (-5.0, 3.0)   # the prior scale of a lower layer: wide, but a runaway never reaches inf or 0


class HierarchicalVAE(ConditionalVAE):
    """`stochastic_layers` latent layers, top-down; the flat latent is the layers' standardised noise (see above)."""

    def __init__(self, cfg: VAEConfig, meta) -> None:
        super().__init__(cfg, meta)
        self.top_dim = cfg.latent_dim
        n_lower = cfg.stochastic_layers - 1
        lc = cfg.layer_channels
        # Decoder stage j starts at the SiLU before its transposed convolution, with widths[stages - j] channels at
        # side bottom * 2**j; the encoder's features there come out of downsampling number stages - 1 - j.
        self._stage_starts = [i - 1 for i, m in enumerate(self.decoder) if isinstance(m, nn.ConvTranspose2d)]
        self._down_layers = [i for i, m in enumerate(self.encoder) if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
        chans = [self._widths[cfg.stages - j] for j in range(n_lower)]
        self.sides = [self.bottom * 2 ** j for j in range(n_lower)]
        self.prior_nets = nn.ModuleList(
            [nn.Sequential(nn.SiLU(), nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, 2 * lc, 1))
             for c in chans])
        self.posterior_nets = nn.ModuleList(
            [nn.Sequential(nn.SiLU(), nn.Conv2d(2 * c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, 2 * lc, 1))
             for c in chans])
        self.latent_proj = nn.ModuleList([nn.Conv2d(lc, c, 1) for c in chans])
        with torch.no_grad():
            for net in (*self.prior_nets, *self.posterior_nets):
                # Start at prior N(0, I) and posterior N(0, I) in eps-space: no KL, no noise blow-up at step 0.
                net[-1].weight.mul_(0.01)
                net[-1].bias.zero_()
        self._layers = (("z1", self.top_dim),) + tuple((f"z{j + 2}", lc * s * s) for j, s in enumerate(self.sides))
        self.latent_dim = sum(n for _, n in self._layers)

    @property
    def latent_layers(self) -> tuple[tuple[str, int], ...]:
        return self._layers

    # ---------------------------------------------------------------- the top-down pass
    def _encoder_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The flattened bottom features (for z1) and, per lower layer, the encoder's features at its side."""
        h = pad_image(x, self.image_size, self.padded_size)
        downs = []
        for i, layer in enumerate(self.encoder):
            h = layer(h)
            if i in self._down_layers:
                downs.append(h)
        stages = self.cfg.stages
        return h.flatten(1), [downs[stages - 1 - j] for j in range(len(self.sides))]

    def _top_z1(self, flat: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        if y is not None:
            flat = torch.cat([flat, self.enc_label(y).to(flat.dtype)], dim=1)
        return self.mu_head(flat).float(), self.logvar_head(flat).float().clamp(-30.0, 20.0)

    def _top_down(self, z1: Tensor, y: Tensor | None, lower) -> Tensor:
        """The decoder's raw output, with lower layer j's latent from `lower(j, h)` (h: the features there) added
        at the start of decoder stage j. Mirrors ConditionalVAE._decode_raw (label conditioning, stage labels)."""
        if y is not None:
            e = self._dec_label(y).to(z1.dtype)
            z1 = torch.cat([z1, e], dim=1) if self.cfg.conditioning == "concat" else z1 + e
        h = self.dec_in(z1).view(z1.shape[0], self._widths[-1], self.bottom, self.bottom)
        stage, j = 0, 0
        for i, layer in enumerate(self.decoder):
            if j < len(self.sides) and i == self._stage_starts[j]:
                h = h + self.latent_proj[j](lower(j, h).to(h.dtype))
                j += 1
            h = layer(h)
            if self.stage_labels != "none" and isinstance(layer, nn.ConvTranspose2d):
                h = self._stage_label(h, y, stage)
                stage += 1
        return crop_image(h, self.image_size, self.padded_size).float()

    def _prior(self, j: int, h: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_sigma = self.prior_nets[j](h).float().chunk(2, dim=1)
        return mu, log_sigma.clamp(*LOG_SIGMA_RANGE)

    def _posterior(self, j: int, h: Tensor, feat: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(eps_j | x, z_<j), each (B, lc, r, r)."""
        m, lv = self.posterior_nets[j](torch.cat([h, feat.to(h.dtype)], dim=1)).float().chunk(2, dim=1)
        return m, lv.clamp(-30.0, 20.0)

    def _split(self, z: Tensor) -> list[Tensor]:
        """The flat code (B, latent_dim) -> [eps_1 (B, top_dim), eps_2 (B, lc, r, r), ...]."""
        parts = list(torch.split(z, [n for _, n in self._layers], dim=1))
        lc = self.cfg.layer_channels
        return [parts[0]] + [p.reshape(len(z), lc, s, s) for p, s in zip(parts[1:], self.sides, strict=True)]

    # ---------------------------------------------------------------- the public API (the rest is inherited)
    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Each layer's eps-space posterior mean and log-variance, the layers above at their posterior means,
        flattened and concatenated top layer first: each (B, latent_dim)."""
        _, means, logvars = self._posterior_pass(x, y, sample=False)
        return torch.cat(means, dim=1), torch.cat(logvars, dim=1)

    def _decode_raw(self, z: Tensor, y: Tensor | None) -> Tensor:
        yl = self._labels(y, z.shape[0], z.device)
        eps = self._split(z)

        def lower(j: int, h: Tensor) -> Tensor:
            mu_p, log_sigma = self._prior(j, h)
            return mu_p + log_sigma.exp() * eps[j + 1].to(mu_p.dtype)

        return self._top_down(eps[0], yl, lower)

    def label_embedding(self, y: Tensor | None, batch: int | None = None) -> Tensor:
        """The label's shift of the flat code: the top layer's embedding, zeros on the lower layers (the label
        reaches them through the decoder's features)."""
        top = super().label_embedding(y, batch)
        if top.shape[1] == self.latent_dim:      # unconditional: already zeros of the full size
            return top
        return torch.cat([top, top.new_zeros(len(top), self.latent_dim - self.top_dim)], dim=1)

    def _posterior_pass(self, x: Tensor, y: Tensor | None, *, sample: bool = True
                        ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Through all layers, each at a posterior sample (`sample`) or at its posterior mean (no random draw): the
        raw decoder output, and each layer's eps-space posterior mean and log-variance (flattened)."""
        yl = self._labels(y, x.shape[0], x.device)
        flat, feats = self._encoder_features(x)
        mu1, lv1 = self._top_z1(flat, yl)
        means, logvars = [mu1], [lv1]

        def draw(m: Tensor, lv: Tensor) -> Tensor:
            return m + torch.randn_like(m) * (0.5 * lv).exp() if sample else m

        def lower(j: int, h: Tensor) -> Tensor:
            m, lv = self._posterior(j, h, feats[j])
            means.append(m.flatten(1))
            logvars.append(lv.flatten(1))
            mu_p, log_sigma = self._prior(j, h)
            return mu_p + log_sigma.exp() * draw(m, lv)

        return self._top_down(draw(mu1, lv1), yl, lower), means, logvars

    def _sampled_raw(self, x: Tensor, y: Tensor | None) -> Tensor:
        return self._posterior_pass(x, y)[0]

    def loss(self, x: Tensor, y: Tensor | None = None, *, step: int = 0, with_kl_dims: bool = False
             ) -> dict[str, Tensor]:
        """As ConditionalVAE.loss (loss, recon, kl, elbo, beta, ...) plus kl_<layer> for each layer (they add up to
        kl). Each layer's KL is analytic given the sampled layers above: the usual hierarchical ELBO."""
        raw, means, logvars = self._posterior_pass(x, y)
        per_layer = [gaussian_kl(m, lv) for m, lv in zip(means, logvars, strict=True)]
        out = self._objective(raw, x, torch.cat(per_layer, dim=1), step, with_kl_dims)
        for (name, _), layer_kl in zip(self._layers, per_layer, strict=True):
            out[f"kl_{name}"] = layer_kl.sum(1).mean()
        return out
