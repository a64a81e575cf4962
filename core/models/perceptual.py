"""Perceptual losses a VAE can add to its reconstruction term (`VAEConfig.perceptual`), none needing a download.

A pixel likelihood scores every pixel on its own, so the decoder's best guess under uncertainty is the average of
the possible images: a blur. A perceptual term compares the decoder's mean image with x in a space where blur costs
more. Both are per-image values (summed, like the reconstruction term), added to the loss as
`perceptual_weight * perceptual` and logged as "perceptual"; the ELBO and its terms keep their meaning.

- "fft": the focal frequency loss (Jiang et al., "Focal Frequency Loss for Image Reconstruction and Synthesis",
  ICCV 2021). Both images go through an orthonormal 2-D DFT (torch.fft); each frequency's squared distance is
  weighted by its own (detached) distance, normalised per image to at most 1, so the frequencies the decoder gets
  most wrong — for a blurry decoder, the high ones — dominate. Without the weights this would equal the pixel MSE
  (Parseval), which is why it is not just another pixel loss. No weights, no download.
- "vgg": distances between unit-normalised VGG16 feature maps (relu1_2, relu2_2, relu3_3), as LPIPS does without its
  learned linear heads. It uses ImageNet weights only when torchvision's file is already in torch's hub cache; it
  never downloads (construction raises UserError naming the file instead). The VGG is not part of the model's
  state: checkpoints stay small and the weights never reach the optimiser.

Never use the evaluation judge's features here: that would train the model to game the Fréchet score it is judged by.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from core.errors import UserError

VGG16_FILE = "vgg16-397923af.pth"   # torchvision's name for the ImageNet VGG16 weights (VGG16_Weights.IMAGENET1K_V1)
_VGG_TAPS = (3, 8, 15)              # relu1_2, relu2_2, relu3_3 in torchvision's vgg16().features
_VGG16_CONVS = 9                    # entries of torchvision's cfgs["D"] up to relu3_3: 64, 64, M, 128, 128, M, 256 x3
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def focal_frequency_loss(pred: Tensor, target: Tensor, *, alpha: float = 1.0) -> Tensor:
    """Focal frequency loss per image (B,) between images (B, C, H, W) in [0, 1]; 0 when they are equal."""
    diff = torch.fft.fft2(pred.float(), norm="ortho") - torch.fft.fft2(target.float(), norm="ortho")
    distance = diff.real.square() + diff.imag.square()                    # |F(pred) - F(target)|^2 per frequency
    weight = distance.detach().sqrt().pow(alpha)
    weight = weight / weight.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1, 1)   # each image's worst = 1
    return (weight * distance).flatten(1).sum(1)


def vgg16_weights_path() -> Path:
    """Where torchvision keeps the ImageNet VGG16 weights: torch's hub cache (TORCH_HOME moves it)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


class VGGFeatureLoss(nn.Module):
    """LPIPS-style distance (B,) in frozen VGG16 features; images (B, 1 or 3, H, W) in [0, 1], H and W >= 4."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers
        path = vgg16_weights_path()
        if not path.is_file():
            raise UserError(f"the vgg perceptual loss needs torchvision's ImageNet VGG16 weights at {path} and never "
                            "downloads them during training; fetch them once with `python -c \"import torchvision; "
                            "torchvision.models.vgg16(weights='IMAGENET1K_V1')\"` (or copy the file there), or choose "
                            "perceptual=fft, which needs no weights")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)   # tensors only: no code is unpickled
            # VGG16's first 16 feature layers (cfgs["D"] up to the third block's convolutions), without building
            # the 138M-parameter classifier that vgg16() would allocate.
            features = make_layers(cfgs["D"][:_VGG16_CONVS])
            features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                      if k.startswith("features.") and int(k.split(".")[1]) <= _VGG_TAPS[-1]})
        except (OSError, RuntimeError, KeyError, ValueError, AttributeError) as e:
            raise UserError(f"{path} is not a readable torchvision VGG16 weights file ({e}); delete it and fetch it "
                            "again, or choose perceptual=fft") from None
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _taps(self, x: Tensor) -> list[Tensor]:
        h = (x.float().expand(-1, 3, -1, -1) - self.mean) / self.std      # grayscale is seen as three equal channels
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in _VGG_TAPS:
                out.append(h / (h.square().sum(1, keepdim=True).sqrt() + 1e-10))   # unit length across channels
        return out

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            real = self._taps(target)
        return sum((a - b).square().sum(1).mean((1, 2)) for a, b in zip(self._taps(pred), real, strict=True))


class PerceptualLoss:
    """The configured perceptual term, kept outside the VAE's module tree (not in its state_dict, parameters or
    checkpoint); `__call__(pred, target)` -> per-image values (B,) on the images' device."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.vgg = VGGFeatureLoss() if kind == "vgg" else None

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.vgg is None:
            return focal_frequency_loss(pred, target)
        if self.vgg.mean.device != pred.device:
            self.vgg.to(pred.device)    # follows the model to its device on the first step there
        return self.vgg(pred, target)
