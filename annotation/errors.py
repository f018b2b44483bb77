"""Errors of the annotation package: each names the URL, field or label at fault and the fix."""

from __future__ import annotations


class AnnotationError(Exception):
    """A request the annotation layer cannot honour (bad label set, bad clip, bad prediction)."""


class AnnotationServerError(AnnotationError):
    """Label Studio is unreachable, rejects the token, or refuses a request."""


class LabelStudioServerError(AnnotationServerError):
    """The local Label Studio server cannot be started or stopped (busy port, missing executable)."""
