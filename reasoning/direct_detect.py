"""`axr detect --direct`: images (and video frames) straight to the VLM with normal reference images and the
rule book, optionally behind the visual gate, with nearest-reference retrieval, hints and drawn results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from axr.reasoning.deduction import DirectItem, direct_verdicts, smooth_frame_verdicts
from axr.reasoning.media import MediaError, boxed_image, load_image
from axr.reasoning.perception import collect_media


def detect_images(
    backend, inputs, references, book, subject, window, visual: dict, on_message=print
) -> tuple[list, list[dict]]:
    """(verdicts for every readable image or frame of `inputs`, a {sample_id, error} record for each unreadable
    one, also reported through `on_message`). `visual` holds the gate options: gate, hint, retrieve,
    gate_model, draw."""
    if not backend.supports_images:
        raise ValueError(f"--direct needs a vision-language model; {backend.model} reads text only")
    images, videos, skipped = [], {}, []
    for item in collect_media(inputs):
        try:
            images.append((item.sample_id, item.load()))
            if item.frame_index is not None:
                videos.setdefault(item.source, []).append(len(images) - 1)
        except MediaError as error:
            skipped.append({"sample_id": item.sample_id, "error": str(error)})
    for record in skipped:
        on_message(f"skipped {record['error']}")
    try:
        refs = [load_image(p) for p in references]
    except MediaError as error:
        raise ValueError(f"reference: {error}") from None
    if not images:
        raise ValueError("no readable images in the inputs")
    domain = "object" if subject == "object" else "scene"
    if visual["gate"] or visual["hint"] or visual["retrieve"] or (visual["draw"] and refs):
        verdicts = _gated(backend, images, refs, book, domain, visual, on_message)
    else:
        verdicts = direct_verdicts(
            backend, [DirectItem(sid, [image], refs) for sid, image in images], book, domain=domain
        )
    if visual["draw"]:
        draw_verdicts(visual["draw"], images, verdicts)
        on_message(f"drew {len(verdicts)} images in {visual['draw']}")
    return smooth_frame_verdicts(verdicts, list(videos.values()), window), skipped


def _gated(backend, images, refs, book, domain, visual, on_message):
    from axr.reasoning.local_models import resolve_model
    from axr.reasoning.visual_gate import PatchFeatures, gated_direct, parse_gate

    if not refs:
        raise ValueError("--gate, --hint, --retrieve and --draw need normal reference images (--reference)")
    features = PatchFeatures(resolve_model(visual["gate_model"]))
    spec = parse_gate(visual["gate"]) if visual["gate"] else None
    verdicts, sent = gated_direct(
        backend, images, refs, book, domain, features, spec, visual["hint"], visual["retrieve"]
    )
    on_message(f"visual gate: {sent} of {len(images)} images sent to the VLM")
    return verdicts


def draw_verdicts(folder: Path, images, verdicts) -> None:
    """Each image with its verdict's box, and next to it the gate's heat map when there is one."""
    from axr.reasoning.visual_gate import GateResult

    folder.mkdir(parents=True, exist_ok=True)
    for (sample_id, image), verdict in zip(images, verdicts, strict=True):
        name = sample_id.replace("/", "_")
        boxed_image(image, verdict).save(folder / f"{name}.png")
        if "gate_map" in verdict.meta:
            result = GateResult(verdict.meta["gate_score"], np.array(verdict.meta["gate_map"]))
            result.heatmap(image).save(folder / f"{name}.map.png")
