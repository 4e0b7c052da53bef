"""model-export: trains fraudflow's conditional normalizing flow and exports the ONNX artifact.

The pipeline: raw handbook transactions (:mod:`model_export.data`) -> profile aggregates
(:mod:`model_export.features`) -> conditional flow with a linear fraud head
(:mod:`model_export.flow`, :mod:`model_export.train`) -> Platt calibration
(:mod:`model_export.calibrate`) -> ONNX, manifest and golden cases (:mod:`model_export.export`).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
