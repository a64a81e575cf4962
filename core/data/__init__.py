"""Datasets: the registry and splits (`datasets.py`) and the loaders of each format (`sources.py`: bundled digits,
torchvision's MNIST / Fashion-MNIST / CIFAR-10 files, image folders). The bottom layer: imports nothing else of core
but the shared modules (config, errors, paths, files)."""
