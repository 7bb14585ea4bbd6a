"""Segmentation losses on sigmoid logits and binary masks, written from their formulas."""

from __future__ import annotations

import torch

from lossmagic.catalog.entry import CatalogEntry, Parameter, Reference

__all__ = ["ENTRIES"]


def dice(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss 1 - (2 |P * M| + s) / (|P| + |M| + s), per image, averaged.

    Source: Milletari et al., "V-Net", 3DV 2016, equation 1, with additive smoothing s.
    """
    probs = torch.sigmoid(logits).flatten(1)
    target = masks.flatten(1)
    intersection = (probs * target).sum(dim=1)
    total = probs.sum(dim=1) + target.sum(dim=1)
    return (1.0 - (2.0 * intersection + smooth) / (total + smooth)).mean()


def jaccard(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Jaccard (IoU) loss 1 - (|P * M| + s) / (|P| + |M| - |P * M| + s), per image.

    Source: Rahman and Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks
    for Image Segmentation", ISVC 2016.
    """
    probs = torch.sigmoid(logits).flatten(1)
    target = masks.flatten(1)
    intersection = (probs * target).sum(dim=1)
    union = probs.sum(dim=1) + target.sum(dim=1) - intersection
    return (1.0 - (intersection + smooth) / (union + smooth)).mean()


def tversky(
    logits: torch.Tensor,
    masks: torch.Tensor,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1.0,
) -> torch.Tensor:
    """Tversky loss 1 - (TP + s) / (TP + alpha FP + beta FN + s), per image.

    Source: Salehi et al., "Tversky Loss Function for Image Segmentation Using 3D Fully
    Convolutional Deep Networks", MLMI 2017, equation 3.
    """
    probs = torch.sigmoid(logits).flatten(1)
    target = masks.flatten(1)
    true_pos = (probs * target).sum(dim=1)
    false_pos = (probs * (1.0 - target)).sum(dim=1)
    false_neg = ((1.0 - probs) * target).sum(dim=1)
    index = (true_pos + smooth) / (true_pos + alpha * false_pos + beta * false_neg + smooth)
    return (1.0 - index).mean()


def _over_whole_batch(reference: Reference) -> Reference:
    """Turn a per-image overlap loss into the variant that pools every pixel of the batch."""

    def variant(logits: torch.Tensor, masks: torch.Tensor, **params: float) -> torch.Tensor:
        return reference(logits.reshape(1, -1), masks.reshape(1, -1), **params)

    variant.__doc__ = f"{reference.__name__} over the whole batch at once (a common variant)."
    return variant


_MASKS = "logits:float[N,1,H,W] masks:float[N,1,H,W]~binary"
_SMOOTH = Parameter("smooth", 1.0, ("smoothing", "epsilon", "eps", "laplace smoothing"))

ENTRIES = (
    CatalogEntry(
        key="dice",
        names=("Dice loss", "soft Dice loss", "Sorensen-Dice loss", "F1 loss"),
        family="segmentation",
        description=(
            "one minus twice the overlap between the sigmoid mask prediction and the target "
            "mask divided by their total size, computed per image and averaged"
        ),
        spec=_MASKS,
        reference=dice,
        parameters=(_SMOOTH,),
        keywords=(
            "overlap",
            "segmentation",
            "mask",
            "masks",
            "intersection",
            "pixels",
            "foreground",
            "twice",
            "medical",
            "coefficient",
        ),
        variants=(_over_whole_batch(dice),),
    ),
    CatalogEntry(
        key="jaccard",
        names=("Jaccard loss", "soft IoU loss", "IoU loss", "intersection over union loss"),
        family="segmentation",
        description=(
            "one minus the intersection of the sigmoid mask prediction and the target mask "
            "divided by their union, per image and averaged"
        ),
        spec=_MASKS,
        reference=jaccard,
        parameters=(_SMOOTH,),
        keywords=("intersection", "union", "overlap", "segmentation", "mask", "masks", "pixels"),
        variants=(_over_whole_batch(jaccard),),
    ),
    CatalogEntry(
        key="tversky",
        names=("Tversky loss", "Tversky index loss"),
        family="segmentation",
        description=(
            "one minus true positives over true positives plus alpha times false positives "
            "plus beta times false negatives, to trade precision against recall in "
            "segmentation"
        ),
        spec=_MASKS,
        reference=tversky,
        parameters=(
            Parameter("alpha", 0.3, ("false positive weight", "\N{GREEK SMALL LETTER ALPHA}")),
            Parameter("beta", 0.7, ("false negative weight", "\N{GREEK SMALL LETTER BETA}")),
            _SMOOTH,
        ),
        keywords=(
            "false positives",
            "false negatives",
            "precision",
            "recall",
            "segmentation",
            "mask",
            "lesion",
            "small structures",
        ),
        variants=(_over_whole_batch(tversky),),
    ),
)
