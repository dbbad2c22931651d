"""Visual diagnostics of a run (``bench diagnose``): adversarial galleries, saliency and
feature maps, feature embeddings, label co-occurrence, MedRDF's Robust Metric cases.

See :mod:`benchmark.diagnostics.run` for what is drawn and from what, and
:mod:`benchmark.results.diagnostics` for where the figures and their index are kept.
"""

from benchmark.diagnostics.cooccurrence import cooccurrence, cooccurrence_shift
from benchmark.diagnostics.run import DiagnoseReport, diagnose
from benchmark.diagnostics.saliency import feature_maps, grad_cam, input_gradient

__all__ = [
    "DiagnoseReport",
    "cooccurrence",
    "cooccurrence_shift",
    "diagnose",
    "feature_maps",
    "grad_cam",
    "input_gradient",
]
