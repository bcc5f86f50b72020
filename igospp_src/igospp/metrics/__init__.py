"""Measures of saliency maps: the causal insertion/deletion metrics, map similarity, and localization.

* :mod:`igospp.metrics.causal`: insertion and deletion curves and AUCs (Petsiuk et al. 2018)
  under named protocols (the authors' and RISE's).
* :mod:`igospp.metrics.similarity`: Spearman rank correlation and SSIM between two maps (the
  sanity checks).
* :mod:`igospp.metrics.localization`: the top fraction of a map's pixels (the paper's "pixel
  ratio").
"""

from igospp.metrics.causal import (
    PROTOCOLS,
    CausalMetricResult,
    Protocol,
    insertion_deletion,
    rise_blur_kernel,
    substrate,
)
from igospp.metrics.localization import top_fraction
from igospp.metrics.similarity import rank_correlation, ssim

__all__ = ["Protocol", "PROTOCOLS", "CausalMetricResult", "insertion_deletion", "rise_blur_kernel", "substrate",
           "rank_correlation", "ssim", "top_fraction"]
