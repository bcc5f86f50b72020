"""Small labelled image sets for training the book's own classifiers.

* :func:`digits`: scikit-learn's 1,797 handwritten digits (8 x 8, bundled with scikit-learn,
  always available offline), upsampled to any size.
* :func:`fashion_mnist`: Fashion-MNIST, the data set of the paper's label randomization test
  (Fig. 3), read with torchvision's loader from a local folder; nothing is downloaded.

Both return ``(images, labels, class_names)`` with images in ``[0, 1]``, shape (N, 1, S, S).
"""

from __future__ import annotations

from pathlib import Path

import torch

from igospp import checks

__all__ = ["digits", "fashion_mnist", "split", "FASHION_MNIST_CLASSES"]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


def _check_size(size: int) -> None:
    checks.integer("size", size, low=8)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1, s, s) images in [0, 1] resized bilinearly to ``size`` (unchanged when already that size)."""
    if x.shape[-1] == size:
        return x
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def digits(size: int = 32) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """scikit-learn's handwritten digits as (1797, 1, size, size) images in [0, 1] and their labels.

    The 8 x 8 originals (16 grey levels) are upsampled bilinearly so that masks of a few cells
    per side still cover several pixels.

    Example:
        >>> import igospp.studies.datasets as ds
        >>> x, y, names = ds.digits(16)
        >>> tuple(x.shape), int(y[:10].sum()), names[3]
        ((1797, 1, 16, 16), 45, '3')
    """
    from sklearn.datasets import load_digits

    _check_size(size)
    data = load_digits()
    x = _resize(torch.as_tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0, size)
    return x, torch.as_tensor(data.target, dtype=torch.long), [str(c) for c in data.target_names]


def fashion_mnist(data_dir: str | Path, train: bool = True, size: int = 28,
                  n: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Fashion-MNIST from ``data_dir`` (torchvision's layout: ``data_dir/FashionMNIST/raw/*-ubyte[.gz]``).

    Args:
        data_dir: the folder given to ``torchvision.datasets.FashionMNIST(root=...)``.
        train: the 60,000 training images, or the 10,000 test images.
        size: side of the returned images (28 is the original).
        n: keep the first ``n`` images.

    Raises:
        FileNotFoundError: the files are not in ``data_dir``; the message says how to fetch them
            on a machine with network access.
    """
    from torchvision.datasets import FashionMNIST

    _check_size(size)
    try:
        data = FashionMNIST(root=str(data_dir), train=train, download=False)
    except RuntimeError as err:
        raise FileNotFoundError(
            f"Fashion-MNIST was not found under data_dir={str(data_dir)!r} ({err}). On a machine with network "
            f"access run `python -c \"import torchvision; torchvision.datasets.FashionMNIST({str(data_dir)!r}, "
            "download=True)\"` and copy the folder here, or use the bundled digits (dataset='digits').") from None
    x = _resize(data.data[:n].float().unsqueeze(1) / 255.0, size)
    return x, data.targets[:n].long(), list(FASHION_MNIST_CLASSES)


def split(n: int, test_fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n)`` into (train indices, test indices).

    Example:
        >>> import torch, igospp.studies.datasets as ds
        >>> train, test = ds.split(10, 0.3, torch.Generator().manual_seed(0))
        >>> len(train), len(test), sorted(train.tolist() + test.tolist()) == list(range(10))
        (7, 3, True)
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    order = torch.randperm(n, generator=generator)
    n_test = max(1, round(n * test_fraction))
    return order[n_test:], order[:n_test]
