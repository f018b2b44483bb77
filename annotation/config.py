"""The Label Studio labeling config of an audio or image project, generated from a label set.

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
IMAGE = "image"          # image tasks: the <Image> of the clip (a detector's crop, or the whole frame)
FRAME = "frame"          # image tasks: the whole frame with the crop's box drawn
BOX = "box"              # image tasks with boxes: the <RectangleLabels> on the frame
BOX_LABEL = "animal"
MODALITIES = ("audio", "image")


def _choices(labels: Sequence[str]) -> list[str]:
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
    return choices


def config_for(labels: Sequence[str], modality: str = "audio", boxes: bool = False) -> str:
    """The labeling config for clips of ``modality`` ("audio" or "image"); ``boxes`` lets image annotators
    correct the detector's box (a ``RectangleLabels`` control on the frame)."""
    if modality not in MODALITIES:
        raise AnnotationError(f"modality must be one of {list(MODALITIES)}, got {modality!r}")
    return label_config(labels) if modality == "audio" else image_label_config(labels, boxes=boxes)


def image_label_config(labels: Sequence[str], boxes: bool = False) -> str:
    """Labeling config XML for image clips: the clip (crop or frame), species choices, and the whole frame
    with the detector's box drawn (editable as a rectangle with ``boxes``)."""
    choices = _choices(labels)
    box = ([f'  <RectangleLabels name="{BOX}" toName="{FRAME}" strokeWidth="3">',
            f'    <Label value="{BOX_LABEL}" background="{WINDOW_COLOR}"/>', "  </RectangleLabels>"]
           if boxes else [])
    xml = "\n".join([
        "<View>",
        '  <Header value="Clip $clip_id: $file (site $site, $time)"/>',
        f'  <Image name="{IMAGE}" value="${IMAGE}" maxWidth="720px"/>',
        '  <Header size="5" value="Species in the image (tick all that apply; Other or Noise/empty when none fits)"/>',
        f'  <Choices name="{SPECIES}" toName="{IMAGE}" choice="multiple" showInline="true">',
        *choices,
        "  </Choices>",
        '  <Header size="6" value="$frame_note"/>',
        f'  <Image name="{FRAME}" value="${FRAME}" maxWidth="720px"/>',
        *box,
        "</View>",
    ])
    validate_config(xml)
    return xml


def label_config(labels: Sequence[str]) -> str:
    """Labeling config XML for audio clips of one label set; validated with the SDK's ``LabelInterface``."""
    choices = _choices(labels)
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


def modality_of(xml: str) -> str:
    """Whether a config made by the workbench labels audio or image clips (by its species control's target)."""
    li = validate_config(xml)
    try:
        target = li.get_control(SPECIES).to_name[0]
    except Exception:  # noqa: BLE001 - the SDK raises a bare Exception for a missing tag
        return "audio"
    return "image" if target == IMAGE else "audio"
