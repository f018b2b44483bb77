"""Annotation with Label Studio: a local server, label sets, label configs, audio clips, push and pull.

Modules: ``server`` (LocalLabelStudio), ``labelset`` (label sets from the pool), ``config`` (the
labeling config), ``clips`` (cut_clip), ``client`` (LabelStudioClient: ensure_project, push, pull),
``errors``. Import from the modules; this package imports nothing heavy on its own.
"""

from annotation.errors import AnnotationError, AnnotationServerError, LabelStudioServerError

__all__ = ["AnnotationError", "AnnotationServerError", "LabelStudioServerError"]
