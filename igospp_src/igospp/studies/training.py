"""Small classifiers trained here: the sanity checks' CNN and the chest x-ray case study's model.

The paper trains two models of its own: a simple CNN on Fashion-MNIST, once with true and once
with random labels (the label randomization test, Fig. 3), and a COVID-19 classifier (Table 4).
This module holds what both need: a small CNN for any number of input channels, a 1-channel
ResNet18, a deterministic training loop (every shuffle and initialization drawn from a seeded
``torch.Generator``) and the classification scores of Table 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from igospp import checks
from igospp.inputs import check_images

__all__ = ["SmallCNN", "resnet18_classifier", "init_parameters", "train_classifier", "TrainingHistory", "predict",
           "ClassScores", "class_scores"]


class SmallCNN(nn.Module):
    """Three 3x3 convolutions with ReLU, max-pooling after the first two, average pooling to 4 x 4, a linear layer.

    It takes images of any size at least 4 x 4; the 4 x 4 pooling keeps the layout that digits
    and clothes are told apart by.

    Args:
        in_channels: channels of the input (1 for digits, Fashion-MNIST and x-rays).
        num_classes: number of outputs (logits).
        width: channels of the first convolution; the next two have ``2 * width``.

    Example:
        >>> import torch, igospp.studies.training as tr
        >>> tr.SmallCNN(1, 10)(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("width", width)):
            checks.positive_int(name, value)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Linear(2 * width * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def resnet18_classifier(in_channels: int = 1, num_classes: int = 3) -> nn.Module:
    """torchvision's ResNet18, untrained, with ``in_channels`` inputs and ``num_classes`` outputs.

    No weights are downloaded: the network is initialized here (pass it through
    :func:`init_parameters` for a seeded initialization) and trained with :func:`train_classifier`.

    Example:
        >>> import torch, igospp.studies.training as tr
        >>> tr.resnet18_classifier(1, 3)(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 3])
    """
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def init_parameters(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialize every convolution and linear layer of ``model`` from ``generator`` (in place).

    Weights and biases are drawn uniformly in ``±1/sqrt(fan_in)`` (the bound of PyTorch's default
    initialization), so that two runs with the same seed start from the same network whatever
    the global random state; batch-norm layers are reset to weight 1 and bias 0. Returns ``model``.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                bound = 1.0 / fan_in ** 0.5
                module.weight.copy_((torch.rand(module.weight.shape, generator=generator) * 2 - 1) * bound)
                if module.bias is not None:
                    module.bias.copy_((torch.rand(module.bias.shape, generator=generator) * 2 - 1) * bound)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()
    return model


@dataclass
class TrainingHistory:
    """Per epoch: mean training loss and training accuracy (and test accuracy when test data were given)."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


def _check_labels(labels: object, n: int | None, name: str) -> torch.Tensor:
    """``labels`` as a 1-D long tensor; with ``n``, it must have ``n`` entries."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D integer tensor of class indices, got {type(labels).__name__}.")
    if labels.dim() != 1 or labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name} must be a 1-D integer tensor of class indices, got dtype {labels.dtype} "
                        f"and shape {tuple(labels.shape)}.")
    if n is not None and labels.numel() != n:
        raise ValueError(f"{name} has {labels.numel()} entries but there are {n} images.")
    return labels.long()


def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits of ``model`` (put in eval mode) for ``images`` (N, C, H, W), in batches, on the model's device."""
    images = check_images(images)
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(images[i:i + batch_size].to(device)).cpu()
                          for i in range(0, images.shape[0], batch_size)])


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 10,
                     lr: float = 1e-3, batch_size: int = 64, weight_decay: float = 0.0,
                     generator: torch.Generator | None = None,
                     test: tuple[torch.Tensor, torch.Tensor] | None = None,
                     progress: bool = False) -> TrainingHistory:
    """Train ``model`` with Adam and cross-entropy; the order of the batches comes from ``generator``.

    Args:
        model: a classifier mapping (B, C, H, W) to (B, K) logits; trained in place on its own device.
        images: (N, C, H, W) floating tensor of training images.
        labels: (N,) integer class indices in ``[0, K)``.
        epochs: passes over the data.
        lr: Adam's learning rate.
        batch_size: images per step.
        weight_decay: Adam's L2 penalty.
        generator: seeded generator for the shuffles; default ``torch.Generator().manual_seed(0)``.
        test: optional ``(images, labels)`` scored after every epoch.
        progress: show a progress bar over epochs.

    Returns:
        A :class:`TrainingHistory`. The model is left in eval mode.

    Example:
        >>> import torch, igospp.studies.training as tr
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(64, 1, 8, 8, generator=g); y = (x.mean((1, 2, 3)) > 0.5).long()
        >>> model = tr.init_parameters(tr.SmallCNN(1, 2, width=8), g)
        >>> len(tr.train_classifier(model, x, y, epochs=2, generator=g).loss)
        2
    """
    images = check_images(images)
    labels = _check_labels(labels, images.shape[0], "labels")
    epochs = checks.positive_int("epochs", epochs)
    batch_size = checks.positive_int("batch_size", batch_size)
    lr = checks.number("lr", lr, low=0.0, strict=True)
    if test is not None:
        test = (check_images(test[0]), _check_labels(test[1], test[0].shape[0], "test labels"))
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = TrainingHistory()
    n = images.shape[0]
    for _ in tqdm(range(epochs), disable=not progress, desc="train", unit="epoch"):
        model.train()
        order = torch.randperm(n, generator=generator)
        total_loss, correct = 0.0, 0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            x, y = images[idx].to(device), labels[idx].to(device)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        history.loss.append(total_loss / n)
        history.accuracy.append(correct / n)
        if test is not None:
            history.test_accuracy.append((predict(model, test[0]).argmax(1) == test[1]).float().mean().item())
    model.eval()
    return history


@dataclass(frozen=True)
class ClassScores:
    """Accuracy over all classes and precision, recall and F1 of one ``positive`` class, in [0, 1]."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    positive: int

    def as_dict(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "precision": self.precision, "recall": self.recall, "f1": self.f1}


def class_scores(predictions: torch.Tensor, labels: torch.Tensor, positive: int) -> ClassScores:
    """The scores of the paper's Table 4 for class ``positive`` (e.g. COVID-19).

    Precision is 0 when nothing is predicted positive, recall 0 when no label is positive
    (scikit-learn's ``zero_division=0``).

    Example:
        >>> import torch, igospp.studies.training as tr
        >>> tr.class_scores(torch.tensor([2, 2, 0, 1]), torch.tensor([2, 0, 0, 2]), positive=2)
        ClassScores(accuracy=0.5, precision=0.5, recall=0.5, f1=0.5, positive=2)
    """
    labels = _check_labels(labels, None, "labels")
    predictions = _check_labels(predictions, labels.numel(), "predictions")
    tp = ((predictions == positive) & (labels == positive)).sum().item()
    predicted, actual = (predictions == positive).sum().item(), (labels == positive).sum().item()
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassScores((predictions == labels).float().mean().item(), precision, recall, f1, positive)
