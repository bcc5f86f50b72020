"""igospp: I-GOS, iGOS++ and their relatives, exact and fast, for any PyTorch classifier.

>>> import igospp
>>> bundle = igospp.load_model("efficientnet_lite0")                    # offline ImageNet weights
>>> x = bundle.preprocess(igospp.sample_images(["chelsea"])["chelsea"])
>>> exp = igospp.explain(bundle.model, x, config=igospp.Config.igospp(resolution=7, iterations=2, ig_steps=2))
>>> exp.mask.shape, exp.saliency.shape
(torch.Size([1, 1, 7, 7]), torch.Size([1, 1, 224, 224]))
"""

import importlib
import importlib.util
import pkgutil
from types import ModuleType

from . import baselines, metrics, viz
from .acceleration import Accelerated, accelerate, fastest_memory_format, streamline
from .blur import blur_baseline, gaussian_kernel1d, scaled_blur_parameters
from .composition import phi, upsample
from .config import METHODS, Config
from .data import SAMPLE_IMAGES, ImageFolder, ImageRecord, image_folder, sample_images
from .explain import Explanation, History, LowScoreWarning, Stats, explain
from .inputs import TrainingModeWarning
from .line_search import LineSearchResult, backtracking_line_search, step_sequence
from .models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODELS,
    ModelBundle,
    WeightsUnavailableError,
    imagenet_class_names,
    load_model,
)
from .objectives import Objective, method_terms
from .paths import (
    PathEngine,
    PathTerm,
    deletion_path_score,
    insertion_path_score,
    path_coefficients,
    path_images,
    path_score,
)
from .regularizers import bilateral_tv, image_weights, l1_term, regularizer, tv
from .targets import Scorer, resolve_target

__version__ = "0.1.0"


def __getattr__(name: str) -> ModuleType:
    """Load the heavier, optional submodules (e.g. ``igospp.evaluation``, ``igospp.cli``) on first use."""
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    submodules = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(set(globals()) | set(submodules))

__all__ = [
    "Config", "METHODS", "explain", "Explanation", "History", "Stats", "LowScoreWarning", "TrainingModeWarning",
    "phi", "upsample", "blur_baseline", "gaussian_kernel1d", "scaled_blur_parameters",
    "path_coefficients", "path_images", "path_score", "deletion_path_score", "insertion_path_score",
    "PathTerm", "PathEngine", "Objective", "method_terms",
    "accelerate", "Accelerated", "streamline", "fastest_memory_format",
    "l1_term", "tv", "bilateral_tv", "image_weights", "regularizer",
    "backtracking_line_search", "step_sequence", "LineSearchResult",
    "Scorer", "resolve_target",
    "load_model", "ModelBundle", "MODELS", "WeightsUnavailableError", "imagenet_class_names",
    "IMAGENET_MEAN", "IMAGENET_STD",
    "sample_images", "SAMPLE_IMAGES", "image_folder", "ImageFolder", "ImageRecord", "metrics", "baselines", "viz",
]
