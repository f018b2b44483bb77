"""How to reach a Label Studio server: plain values, filled by whoever runs the annotation layer."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LS_PORT = 8080
DEFAULT_PROJECT = "Biodiversity workbench"
DEFAULT_IMAGE_PROJECT = "Biodiversity workbench (images)"


@dataclass(frozen=True)
class LabelStudioSettings:
    """How to reach Label Studio. The token and password are secrets: kept out of reprs and logs."""

    url: str
    token: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"LabelStudioSettings(url={self.url!r}, username={self.username!r}, token=***, password=***)"
