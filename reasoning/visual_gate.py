"""The cheap visual stage: PatchCore's idea on the VLM's own vision encoder, no text generated.

Patch features of normal reference images form a memory bank (subsampled by greedy k-center coreset, as
PatchCore does); a query's patches are scored by the distance to their nearest bank entry, giving an
anomaly map and an image score (the largest patch distance). The score gates which images go to the VLM
(`threshold`, or the `top` fraction), and the map is offered to the VLM as a hint ("the most unusual region
is the top left") or drawn for the user.

Features come from `get_image_features` of transformers VLMs (Qwen2-VL/2.5-VL: the merged patch tokens
the language model sees, in row-major order over the merged grid). Each patch is averaged with its 3x3
neighbourhood, which PatchCore found makes the features robust to small shifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from axr.reasoning.media import fit_image, region_name


@dataclass
class GateResult:
    score: float
    anomaly_map: np.ndarray  # (rows, cols) patch distances

    def hint(self) -> str:
        """Where the most unusual patch is, in words, for the VLM prompt."""
        rows, cols = self.anomaly_map.shape
        r, c = np.unravel_index(int(self.anomaly_map.argmax()), self.anomaly_map.shape)
        where = region_name((c + 0.5) / cols, (r + 0.5) / rows)  # the patch centre as a fraction of the image
        return f"the most unusual region is the {where} (patch distance {self.score:.3f})"

    def heatmap(self, image: Image.Image, alpha: float = 0.45) -> Image.Image:
        """The map scaled to the image and blended over it in red, for people."""
        span = float(self.anomaly_map.max() - self.anomaly_map.min()) or 1.0
        normalised = ((self.anomaly_map - self.anomaly_map.min()) / span * 255).astype(np.uint8)
        heat = Image.fromarray(normalised).resize(image.size, Image.Resampling.BILINEAR)
        red = Image.merge("RGB", (heat, Image.new("L", image.size, 0), Image.new("L", image.size, 0)))
        return Image.blend(image.convert("RGB"), red, alpha)


class PatchFeatures:
    """Patch features of images from a transformers VLM's vision encoder."""

    def __init__(self, model: str, device: str = "cpu", trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.torch = torch
        self.processor = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
        net = AutoModelForImageTextToText.from_pretrained(
            model, dtype=torch.float32, trust_remote_code=trust_remote_code
        )
        self.encoder = getattr(net, "model", net)
        if not hasattr(self.encoder, "get_image_features"):
            raise ValueError(f"{model}: this model exposes no get_image_features (not a transformers VLM)")
        self.device = device
        self.encoder.to(device).eval()
        self.merge = getattr(getattr(net.config, "vision_config", None), "spatial_merge_size", 1)

    def __call__(self, images: list[Image.Image], batch_size: int = 16) -> list[np.ndarray]:
        """One (rows, cols, dim) array per image, neighbourhood-averaged."""
        out = []
        for start in range(0, len(images), batch_size):
            chunk = [fit_image(image.convert("RGB")) for image in images[start : start + batch_size]]
            encoded = self.processor.image_processor(images=chunk, return_tensors="pt")
            with self.torch.no_grad():
                result = self.encoder.get_image_features(
                    encoded["pixel_values"].to(self.device), encoded["image_grid_thw"].to(self.device)
                )
            features = getattr(result, "pooler_output", result)
            for tensor, (_, height, width) in zip(features, encoded["image_grid_thw"].tolist(), strict=True):
                grid = tensor.float().cpu().numpy().reshape(height // self.merge, width // self.merge, -1)
                out.append(_neighbourhood_mean(grid))
        return out


def _neighbourhood_mean(grid: np.ndarray) -> np.ndarray:
    padded = np.pad(grid, ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows, cols = grid.shape[:2]
    return sum(padded[r : r + rows, c : c + cols] for r in range(3) for c in range(3)) / 9.0


def coreset(features: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Greedy k-center selection: each pick is the feature farthest from those already picked."""
    if len(features) <= size:
        return features
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(features)))]
    distance = np.linalg.norm(features - features[chosen[0]], axis=1)
    for _ in range(size - 1):
        chosen.append(int(distance.argmax()))
        distance = np.minimum(distance, np.linalg.norm(features - features[chosen[-1]], axis=1))
    return features[chosen]


class MemoryBank:
    """Normal patch features; scores queries by nearest-neighbour distance."""

    def __init__(self, features: PatchFeatures, bank_size: int = 4096):
        self.features, self.bank_size = features, bank_size
        self.bank: np.ndarray | None = None

    def fit(self, normal_images: list[Image.Image]) -> MemoryBank:
        if not normal_images:
            raise ValueError("the visual gate needs at least one normal reference image")
        patches = np.concatenate([grid.reshape(-1, grid.shape[-1]) for grid in self.features(normal_images)])
        self.bank = coreset(patches, self.bank_size)
        return self

    def score(self, images: list[Image.Image]) -> list[GateResult]:
        if self.bank is None:
            raise ValueError("fit the memory bank on normal images first")
        results = []
        bank_sq = (self.bank**2).sum(axis=1)
        for grid in self.features(images):
            flat = grid.reshape(-1, grid.shape[-1])
            squared = (flat**2).sum(axis=1)[:, None] + bank_sq[None, :] - 2 * flat @ self.bank.T
            distances = np.sqrt(np.maximum(squared.min(axis=1), 0)).reshape(grid.shape[:2])
            results.append(GateResult(float(distances.max()), distances))
        return results


def gate_mask(scores: list[float], threshold: float | None = None, top: float | None = None) -> np.ndarray:
    """Which images pass to the VLM: those scoring above `threshold`, or the `top` fraction by score."""
    scores_array = np.asarray(scores, dtype=float)
    if (threshold is None) == (top is None):
        raise ValueError("give the gate either a threshold or a top fraction")
    if threshold is not None:
        return scores_array > threshold
    if not 0 < top <= 1:
        raise ValueError(f"top fraction must be in (0, 1], got {top}")
    keep = max(1, int(np.ceil(top * len(scores_array))))
    mask = np.zeros(len(scores_array), dtype=bool)
    mask[np.argsort(-scores_array, kind="stable")[:keep]] = True
    return mask


def calls_saved_at_recall(labels, scores, recall: float = 0.95) -> dict[str, float]:
    """The lowest threshold that keeps `recall` of the anomalies: the share of images it sends to the VLM."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    anomalous = np.sort(scores[labels == 1])
    if not len(anomalous):
        raise ValueError("no anomalous images to measure recall on")
    cut = anomalous[int(np.floor((1 - recall) * len(anomalous)))]
    sent = scores >= cut
    return {
        "recall_target": recall,
        "threshold": float(cut),
        "recall": float(sent[labels == 1].mean()),
        "share_sent_to_vlm": float(sent.mean()),
        "calls_saved": float(1 - sent.mean()),
    }


def parse_gate(spec: str) -> dict[str, float]:
    """'0.4' -> a threshold on the gate score; 'top:0.3' -> the top 30% by score."""
    try:
        if spec.startswith("top:"):
            return {"top": float(spec[4:])}
        return {"threshold": float(spec)}
    except ValueError:
        raise ValueError(f"--gate {spec!r}: expected a threshold (e.g. 0.4) or top:FRACTION (e.g. top:0.3)") from None


def most_similar(queries: list[np.ndarray], references: list[np.ndarray], k: int) -> list[list[int]]:
    """For each query grid, the indices of the k references whose mean patch feature is closest (cosine)."""

    def pooled(grids):
        vectors = np.stack([g.reshape(-1, g.shape[-1]).mean(axis=0) for g in grids])
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    similarity = pooled(queries) @ pooled(references).T
    return [list(np.argsort(-row, kind="stable")[:k]) for row in similarity]


def gated_direct(
    backend,
    images,
    references,
    book,
    domain,
    features: PatchFeatures,
    spec: dict | None,
    hint: bool = False,
    retrieve: int = 0,
):
    """Direct mode behind the gate: every image is scored against the references; only those the gate passes
    (all, without `spec`) cost a VLM call, each with its hint and its `retrieve` most similar references.
    The others get a `normal` verdict from the gate (stage "gate"). Returns (verdicts, images sent)."""
    from axr.reasoning.deduction import DirectItem, direct_verdicts
    from axr.reasoning.schema import Verdict

    results = MemoryBank(features).fit(references).score([image for _, image in images])
    scores = [r.score for r in results]
    passed = gate_mask(scores, **spec) if spec else np.ones(len(images), dtype=bool)
    cut = min((s for s, ok in zip(scores, passed, strict=True) if ok), default=max(scores)) or 1.0
    chosen = most_similar(features([i for _, i in images]), features(references), retrieve) if retrieve else None
    items, verdicts = [], {}
    for index, ((sample_id, image), result) in enumerate(zip(images, results, strict=True)):
        if passed[index]:
            own = [references[j] for j in chosen[index]] if chosen else references
            items.append(DirectItem(sample_id, [image], own, result.hint() if hint else None))
            continue
        verdicts[sample_id] = Verdict(
            sample_id=sample_id,
            verdict="normal",
            score=min(0.5 * result.score / cut, 0.5),
            rationale={"what": "nothing unusual to the visual gate", "why": "", "how": result.hint()},
            meta={"stage": "gate"},
        )
    for verdict in direct_verdicts(backend, items, book, domain=domain) if items else []:
        verdicts[verdict.sample_id] = verdict
    for (sample_id, _), result in zip(images, results, strict=True):
        verdicts[sample_id].meta.update(
            gate_score=round(result.score, 4), gate_map=result.anomaly_map.round(4).tolist()
        )
    return [verdicts[sample_id] for sample_id, _ in images], len(items)
