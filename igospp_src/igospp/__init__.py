"""igospp: I-GOS, iGOS++ and their relatives, exact and fast, for any PyTorch classifier.

>>> import igospp
>>> bundle = igospp.load_model("efficientnet_lite0")                    # offline ImageNet weights
>>> x = bundle.preprocess(igospp.sample_images(["chelsea"])["chelsea"])
>>> exp = igospp.explain(bundle.model, x, config=igospp.Config.igospp(resolution=7, iterations=2, ig_steps=2))
>>> exp.mask.shape, exp.saliency.shape
(torch.Size([1, 1, 7, 7]), torch.Size([1, 1, 224, 224]))
"""

import importlib
import warnings
from types import ModuleType

from igospp import checks
from igospp._lazy import lazy_submodules
from igospp.acceleration import Accelerated, accelerate, fastest_memory_format, streamline
from igospp.blur import blur_baseline, gaussian_kernel1d, scaled_blur_parameters
from igospp.composition import phi, upsample
from igospp.config import METHODS, Config
from igospp.explain import Explanation, History, LowScoreWarning, Stats, explain
from igospp.images import (
    SAMPLE_IMAGES,
    ImageFolder,
    ImageRecord,
    UnreadableImageError,
    image_folder,
    read_image,
    sample_images,
)
from igospp.inputs import TrainingModeWarning
from igospp.line_search import LineSearchResult, backtracking_line_search, step_sequence
from igospp.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODELS,
    ModelBundle,
    WeightsUnavailableError,
    imagenet_class_names,
    load_model,
)
from igospp.objectives import Objective, method_terms
from igospp.paths import (
    PathEngine,
    PathTerm,
    deletion_path_score,
    insertion_path_score,
    path_coefficients,
    path_images,
    path_score,
)
from igospp.regularizers import bilateral_tv, image_weights, l1_term, regularizer, tv
from igospp.targets import Scorer, resolve_target

__version__ = "0.2.0"


#: Modules of release 0.1 that moved in 0.2, and where they live now. ``igospp.<old name>`` still
#: works, with a :class:`DeprecationWarning`, until the next release.
MOVED: dict[str, str] = {
    "baselines": "igospp.methods", "evaluation": "igospp.studies.benchmark", "stats": "igospp.studies.stats",
    "paper": "igospp.studies.paper", "sanity": "igospp.studies.sanity", "attacks": "igospp.studies.attacks",
    "training": "igospp.studies.training", "xray": "igospp.studies.xray",
    "text_removal": "igospp.studies.text_removal", "datasets": "igospp.studies.datasets", "data": "igospp.images",
    "book": "igospp_book",
}


_load, __dir__ = lazy_submodules(__name__, __path__, lambda: globals())


def __getattr__(name: str) -> ModuleType:
    """Load a submodule on first use (``igospp.methods``, ``igospp.metrics``, ``igospp.viz``, ``igospp.cli``...).

    ``import igospp`` loads the algorithm's core only; the comparison methods, the metrics, the
    studies and the plots come in when first touched, with their dependencies.
    """
    if name in MOVED:
        warnings.warn(f"igospp.{name} moved to {MOVED[name]} in igospp 0.2; the old name goes in the next "
                      "release.", DeprecationWarning, stacklevel=2)
        return importlib.import_module(MOVED[name])
    return _load(name)


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
    "sample_images", "SAMPLE_IMAGES", "image_folder", "ImageFolder", "ImageRecord", "read_image",
    "UnreadableImageError", "checks",
]
