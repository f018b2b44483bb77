"""The Label Studio labeling config of an audio project, generated from a label set.

Each choice shows the readable name (``Common (Scientific)``) and stores the model's label through
``alias``: Label Studio writes the alias into results and matches pre-annotations by it, so what comes
back is exactly the stored label. The 3 s window the model scored is pre-drawn as a ``window`` region
so its edges are visible on the waveform of the longer clip; a spectrogram image of the clip (the same
window marked, see ``annotation.spectrogram``) sits above the waveform, so a call is seen before it is heard.
"""

from __future__ import annotations

from typing import Sequence
from xml.sax.saxutils import quoteattr

from label_studio_sdk.label_interface import LabelInterface

from annotation.errors import AnnotationError
from annotation.labelset import display_label

AUDIO = "audio"          # the <Audio> object tag and the task data field holding the clip URL
SPECIES = "species"      # the <Choices> control
WINDOW = "window"        # the <Labels> control and its one label
SPECTROGRAM = "spectrogram"  # the <Image> object tag and the task data field holding the PNG's URL
WINDOW_COLOR = "#f5a623"


def label_config(labels: Sequence[str]) -> str:
    """Labeling config XML for clips of one label set; validated with the SDK's ``LabelInterface``."""
    labels = list(labels)
    if not labels:
        raise AnnotationError("a label config needs at least one label; the label set is empty")
    if len(set(labels)) != len(labels):
        raise AnnotationError("the label set lists a label twice; Label Studio needs distinct choices")
    shown = [display_label(x) for x in labels]
    if len(set(shown)) != len(shown):
        # two labels would look alike: show the raw labels instead
        shown = list(labels)
    choices = []
    for label, text in zip(labels, shown):
        alias = f" alias={quoteattr(label)} hint={quoteattr(label)}" if text != label else ""
        choices.append(f"    <Choice value={quoteattr(text)}{alias}/>")
    xml = "\n".join([
        "<View>",
        '  <Header value="Clip $clip_id: $file (site $site, $time)"/>',
        '  <Header size="6" value="Orange region: the window the model scored, $window_start s to '
        '$window_end s of this clip; the rest is context"/>',
        f'  <Image name="{SPECTROGRAM}" value="${SPECTROGRAM}"/>',
        f'  <Audio name="{AUDIO}" value="${AUDIO}"/>',
        f'  <Labels name="{WINDOW}" toName="{AUDIO}">',
        f'    <Label value="{WINDOW}" background="{WINDOW_COLOR}"/>',
        "  </Labels>",
        '  <Header size="5" value="Species heard in the clip (tick all that apply)"/>',
        f'  <Choices name="{SPECIES}" toName="{AUDIO}" choice="multiple" showInline="true">',
        *choices,
        "  </Choices>",
        "</View>",
    ])
    validate_config(xml)
    return xml


def validate_config(xml: str) -> LabelInterface:
    """Parse and check a config with the SDK, raising ``AnnotationError`` that quotes the SDK's reason."""
    try:
        li = LabelInterface(xml)
        li.validate()
    except Exception as e:  # noqa: BLE001 - the SDK raises several unrelated types for a bad config
        raise AnnotationError(f"invalid Label Studio label config: {e}") from e
    return li


def species_labels(xml: str) -> list[str]:
    """The stored label (alias, else value) of every species choice of a config, in order."""
    li = validate_config(xml)
    try:
        control = li.get_control(SPECIES)
    except Exception as e:  # noqa: BLE001 - the SDK raises a bare Exception for a missing tag
        raise AnnotationError(f"the project's label config has no <Choices name={SPECIES!r}>: it was not made "
                              f"by the workbench (or was edited); recreate it with ensure_project()") from e
    return list(control.labels)
