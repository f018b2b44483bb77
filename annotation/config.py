"""The Label Studio labeling config of an audio or image project, generated from a label set.

Each choice shows the readable name (``Common (Scientific)``) and stores the model's label through
``alias``: Label Studio writes the alias into results and matches pre-annotations by it, so what comes
back is exactly the stored label. The 3 s window the model scored is pre-drawn as a ``window`` region
so its edges are visible on the waveform of the longer clip; a spectrogram image of the clip (the same
window marked, see ``annotation.spectrogram``) sits above the waveform, so a call is seen before it is heard.
"""

from __future__ import annotations

from typing import Optional, Sequence
from xml.sax.saxutils import quoteattr

from label_studio_sdk.label_interface import LabelInterface

from annotation.errors import AnnotationError
from annotation.labelset import display_label

AUDIO = "audio"          # the <Audio> object tag and the task data field holding the clip URL
SPECIES = "species"      # the <Choices> control
WINDOW = "window"        # the <Labels> control and its one label
REVIEW = "review"        # task data: why the workbench could not use the last submission ("" when it could)
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


NOISE_CHOICE = ("Noise (no species)", "Noise")
OTHER_CHOICE = ("Other species: pick or name it below", "Other")
TAXON = "taxon"          # the <Taxonomy> control: every class the model knows, by genus
NEW_SPECIES = "new_species"  # the <TextArea> control: a name the model does not know
SUGGESTIONS = "suggestions"  # task data: this clip's likely species, [{value, alias}], shown before Noise/Other
TITLE = "title"          # task data: the header (blind by default: the clip number only)


def config_for(labels: Sequence[str], modality: str = "audio", boxes: bool = False, *,
               taxonomy_url: Optional[str] = None, single: bool = False, n_classes: int = 0) -> str:
    """The labeling config for clips of ``modality`` ("audio" or "image"); ``boxes`` lets image annotators
    correct the detector's box (a ``RectangleLabels`` control on the frame).

    With ``taxonomy_url`` (the vocabulary's tree, see ``annotation.vocabulary``) the species control shows
    each task's own ``suggestions`` (the clip's likely species, with their scores) before Noise and Other,
    a searchable taxonomy of every class the model knows (``n_classes``) and a field for a new name follow;
    without it (older projects) the label set's species are fixed choices. ``single``: one species per clip
    (softmax image models).
    """
    if modality not in MODALITIES:
        raise AnnotationError(f"modality must be one of {list(MODALITIES)}, got {modality!r}")
    if modality == "audio":
        return label_config(labels, taxonomy_url=taxonomy_url, n_classes=n_classes)
    return image_label_config(labels, boxes=boxes, taxonomy_url=taxonomy_url, single=single, n_classes=n_classes)


def _species_controls(labels: Sequence[str], target: str, taxonomy_url: Optional[str], single: bool,
                      n_classes: int, what: str) -> list[str]:
    """The species choices (dynamic suggestions + Noise + Other, required), the taxonomy and the new-name field;
    or, without a taxonomy, the label set's fixed choices (the config of earlier releases)."""
    mode = "single" if single else "multiple"
    if taxonomy_url is None:
        return [f'  <Header size="5" value="{what} (tick all that apply)"/>',
                f'  <Choices name="{SPECIES}" toName="{target}" choice="{mode}" showInline="true">',
                *_choices(labels), "  </Choices>"]
    one = "the species" if single else "every species"
    noise = NOISE_CHOICE if target == AUDIO else ("Empty (no animal)", NOISE_CHOICE[1])
    fixed = [f"    <Choice value={quoteattr(v)} alias={quoteattr(a)}/>" for v, a in (noise, OTHER_CHOICE)]
    max_usages = ' maxUsages="1"' if single else ""
    count = f"all {n_classes:,} classes the model knows" if n_classes else "every class the model knows"
    return [
        f'  <Header size="5" value="{what}: tick {one} (the model\'s likely ones first, with its score), or '
        f'{noise[0].split(" (")[0]} when there is none"/>',
        f'  <Choices name="{SPECIES}" toName="{target}" choice="{mode}" showInline="true" value="${SUGGESTIONS}" '
        f'required="true" requiredMessage="Tick a species, {noise[0]}, or Other species and pick or '
        f'name it below">',
        *fixed, "  </Choices>",
        f'  <Header size="6" value="Other species: search {count} by common or scientific name; a genus '
        f'entry (Genus sp.) when only the genus is sure"/>',
        f'  <Taxonomy name="{TAXON}" toName="{target}" apiUrl={quoteattr(taxonomy_url)} '
        f'placeholder="Type part of a name" minWidth="480px"{max_usages}/>',
        f'  <TextArea name="{NEW_SPECIES}" toName="{target}" rows="1" maxSubmissions="1" '
        f'placeholder="A species the search does not know: Scientific name_Common name"/>',
    ]


def image_label_config(labels: Sequence[str], boxes: bool = False, *, taxonomy_url: Optional[str] = None,
                       single: bool = False, n_classes: int = 0) -> str:
    """Labeling config XML for image clips: the clip (crop or frame), the species controls, and for a crop
    its frame with the detector's box drawn (an editable rectangle with ``boxes``; shown only for crops)."""
    if taxonomy_url is None:
        controls = _species_controls(labels, IMAGE, None, single, n_classes,
                                     "Species in the image (Other or Noise/empty when none fits)")
        how = "tick one" if single else "tick all that apply"
        controls[0] = (f'  <Header size="5" value="Species in the image ({how}; Other or Noise/empty '
                       f'when none fits)"/>')
    else:
        controls = _species_controls(labels, IMAGE, taxonomy_url, single, n_classes, "Species in the image")
    box = ([f'  <RectangleLabels name="{BOX}" toName="{FRAME}" strokeWidth="3">',
            f'    <Label value="{BOX_LABEL}" background="{WINDOW_COLOR}"/>', "  </RectangleLabels>"]
           if boxes else [])
    # a whole-frame clip is not shown twice: without boxes the frame is HTML, empty for a whole-frame clip
    frame = ([f'  <Image name="{FRAME}" value="${FRAME}" maxWidth="720px"/>', *box] if boxes
             else [f'  <HyperText name="{FRAME}" value="${FRAME}_html" inline="true"/>'])
    xml = "\n".join([
        "<View>",
        f'  <Header value="${TITLE}"/>',
        '  <Header size="6" value="$review"/>',
        f'  <Image name="{IMAGE}" value="${IMAGE}" maxWidth="720px"/>',
        *controls,
        '  <Header size="6" value="$frame_note"/>',
        *frame,
        "</View>",
    ])
    validate_config(xml)
    return xml


def label_config(labels: Sequence[str], *, taxonomy_url: Optional[str] = None, n_classes: int = 0) -> str:
    """Labeling config XML for audio clips of one label set; validated with the SDK's ``LabelInterface``."""
    xml = "\n".join([
        "<View>",
        f'  <Header value="${TITLE}"/>',
        '  <Header size="6" value="$review"/>',
        '  <Header size="6" value="Orange region: the window the model scored, $window_start s to '
        '$window_end s of this clip; the rest is context"/>',
        f'  <Image name="{SPECTROGRAM}" value="${SPECTROGRAM}"/>',
        f'  <Audio name="{AUDIO}" value="${AUDIO}"/>',
        f'  <Labels name="{WINDOW}" toName="{AUDIO}">',
        f'    <Label value="{WINDOW}" background="{WINDOW_COLOR}"/>',
        "  </Labels>",
        *_species_controls(labels, AUDIO, taxonomy_url, False, n_classes, "Species heard in the clip"),
        "</View>",
    ])
    validate_config(xml)
    return xml


def has_taxonomy(xml: str) -> bool:
    """Whether a project's config is this release's (suggestions, taxonomy, new names) or an older fixed list."""
    return _control_names(xml) >= {SPECIES, TAXON}


def _control_names(xml: str) -> set[str]:
    return {c.name for c in validate_config(xml).controls}


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
