"""Studies built on the library: the paper's experiments, each in its own module.

* :mod:`~igospp.studies.benchmark`: the comparison runner (resumable, sharded) and its
  summaries, writing the records of :mod:`~igospp.studies.records` and sharing the work of
  concurrent runs through :mod:`~igospp.studies.claims`; :mod:`~igospp.studies.stats`: paired differences with
  confidence intervals; :mod:`~igospp.studies.paper`: the paper's tables, for comparison.
* :mod:`~igospp.studies.sanity`: model and label randomization (Adebayo et al. 2018), with
  :mod:`~igospp.studies.datasets` (small training sets) and :mod:`~igospp.studies.training`.
* :mod:`~igospp.studies.attacks`: targeted adversarial examples (MI-FGSM).
* :mod:`~igospp.studies.xray` and :mod:`~igospp.studies.text_removal`: the COVID-19 case study
  (synthetic films with printed markers, COVIDx, text detection and inpainting).

Nothing here is imported by ``import igospp``; import the module you need.
"""

from igospp._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, __path__, lambda: globals())
