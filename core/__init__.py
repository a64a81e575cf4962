"""VAE Explorer's Qt-free core: data, models, training, checkpoints, metrics, latent tools, restoration, CLI.

Nothing in this package may import Qt (a test and an import-linter contract hold us to it), so the CLI, the
benchmarks and GPU servers can use it without a display.
"""

__version__ = "0.1.0"
