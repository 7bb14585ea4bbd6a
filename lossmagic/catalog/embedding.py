"""Metric-learning and contrastive losses, written from their published formulas."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lossmagic.catalog.entry import CatalogEntry, Parameter

__all__ = ["ENTRIES"]


def triplet_margin(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Triplet loss max(0, d(a, p) - d(a, n) + margin) with Euclidean distances.

    Source: Schroff et al., "FaceNet", CVPR 2015, equation 1 (unsquared distances, as in
    torch.nn.TripletMarginLoss, which also adds 1e-6 to the difference).
    """
    to_positive = (anchor - positive + 1e-6).norm(dim=-1)
    to_negative = (anchor - negative + 1e-6).norm(dim=-1)
    return torch.clamp(to_positive - to_negative + margin, min=0).mean()


def contrastive(
    x1: torch.Tensor, x2: torch.Tensor, similar: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Pair loss y d^2 + (1 - y) max(0, margin - d)^2, where y = 1 marks a similar pair.

    Source: Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR 2006, equation 4 (labels flipped so that 1 means similar, and without
    the factor 1/2, which the cross-check accepts as a variant).
    """
    distance = (x1 - x2).pow(2).sum(dim=-1).add(1e-12).sqrt()
    pull = similar * distance**2
    push = (1.0 - similar) * torch.clamp(margin - distance, min=0) ** 2
    return (pull + push).mean()


def _contrastive_halved(
    x1: torch.Tensor, x2: torch.Tensor, similar: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Compute the contrastive loss with the factor 1/2 of the original paper."""
    return 0.5 * contrastive(x1, x2, similar, margin=margin)


def cosine_embedding(
    x1: torch.Tensor, x2: torch.Tensor, targets: torch.Tensor, margin: float = 0.0
) -> torch.Tensor:
    """1 - cos(x1, x2) for pairs labelled 1 and max(0, cos(x1, x2) - margin) for pairs labelled -1.

    Source: the cosine embedding criterion of torch.nn.CosineEmbeddingLoss (PyTorch
    documentation), built on the cosine similarity of Salton and McGill, 1983.
    """
    cosine = F.cosine_similarity(x1, x2, dim=-1)
    similar = 1.0 - cosine
    dissimilar = torch.clamp(cosine - margin, min=0)
    return torch.where(targets > 0, similar, dissimilar).mean()


def hinge_embedding(
    distances: torch.Tensor, targets: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """x for pairs labelled 1 and max(0, margin - x) for pairs labelled -1, on distances x.

    Source: the hinge embedding criterion of torch.nn.HingeEmbeddingLoss (PyTorch
    documentation), after Hadsell, Chopra and LeCun, CVPR 2006.
    """
    pushed = torch.clamp(margin - distances, min=0)
    return torch.where(targets > 0, distances, pushed).mean()


def info_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE: cross-entropy of cosine similarities / temperature, the matching key as class.

    Source: van den Oord et al., "Representation Learning with Contrastive Predictive
    Coding", 2018, equation 4; He et al., "MoCo", CVPR 2020, equation 1 (tau = 0.07).
    """
    q = F.normalize(queries, dim=-1)
    k = F.normalize(keys, dim=-1)
    logits = q @ k.t() / temperature
    labels = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, labels)


def clip_contrastive(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """Symmetric InfoNCE: the mean of image-to-text and text-to-image cross-entropies.

    Source: Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision" (CLIP), ICML 2021, figure 3.
    """
    images = F.normalize(image_embeddings, dim=-1)
    texts = F.normalize(text_embeddings, dim=-1)
    logits = images @ texts.t() / temperature
    labels = torch.arange(images.shape[0], device=images.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent: each of 2N views must pick its other view among the 2N - 1 others.

    Source: Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations" (SimCLR), ICML 2020, equation 1 and algorithm 1.
    """
    batch = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=-1)
    similarity = z @ z.t() / temperature
    self_mask = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))
    index = torch.arange(batch, device=z.device)
    labels = torch.cat([index + batch, index])
    return F.cross_entropy(similarity, labels)


_PAIR_LABELLED = "x1:float[N,D] x2:float[N,D] targets:float[N]~sign"
_TEMPERATURE = ("temperature", "tau", "\N{GREEK SMALL LETTER TAU}", "t")

ENTRIES = (
    CatalogEntry(
        key="triplet",
        names=("triplet margin loss", "triplet loss", "FaceNet loss"),
        family="metric learning",
        description=(
            "max(0, distance(anchor, positive) - distance(anchor, negative) + margin) with "
            "Euclidean distances between embeddings"
        ),
        spec="anchor:float[N,D] positive:float[N,D] negative:float[N,D]",
        reference=triplet_margin,
        parameters=(Parameter("margin", 1.0, ("alpha", "\N{GREEK SMALL LETTER ALPHA}")),),
        keywords=(
            "anchor",
            "positive",
            "negative",
            "embeddings",
            "closer",
            "farther",
            "triplets",
            "face",
            "distance",
        ),
    ),
    CatalogEntry(
        key="contrastive",
        names=("contrastive loss", "pairwise contrastive loss", "siamese loss"),
        family="metric learning",
        description=(
            "squared distance for similar pairs and squared max(0, margin - distance) for "
            "dissimilar pairs, where a label of 1 marks a similar pair"
        ),
        spec="x1:float[N,D] x2:float[N,D] similar:float[N]~binary",
        reference=contrastive,
        parameters=(Parameter("margin", 1.0),),
        keywords=(
            "siamese",
            "pairs",
            "similar",
            "dissimilar",
            "pull together",
            "push apart",
            "distance",
            "embeddings",
        ),
        variants=(_contrastive_halved,),
    ),
    CatalogEntry(
        key="cosine_embedding",
        names=("cosine embedding loss", "CosineEmbeddingLoss"),
        family="metric learning",
        description=(
            "1 - cosine similarity for pairs labelled 1 and max(0, cosine similarity - margin) "
            "for pairs labelled -1"
        ),
        spec=_PAIR_LABELLED,
        reference=cosine_embedding,
        parameters=(Parameter("margin", 0.0),),
        keywords=("cosine", "pairs", "similar", "dissimilar", "-1", "+1", "angle"),
    ),
    CatalogEntry(
        key="hinge_embedding",
        elementwise=True,
        names=("hinge embedding loss", "HingeEmbeddingLoss"),
        family="metric learning",
        description=(
            "the distance itself for pairs labelled 1 and max(0, margin - distance) for pairs "
            "labelled -1"
        ),
        spec="distances:float[N] targets:float[N]~sign",
        reference=hinge_embedding,
        parameters=(Parameter("margin", 1.0),),
        keywords=("distance", "pairs", "-1", "+1", "margin", "similar", "dissimilar"),
    ),
    CatalogEntry(
        key="info_nce",
        names=("InfoNCE loss", "InfoNCE", "NCE contrastive loss", "MoCo loss"),
        family="metric learning",
        description=(
            "cross-entropy over the cosine similarities of each query with every key divided "
            "by a temperature, where the key with the same index is the positive and the "
            "other keys in the batch are negatives"
        ),
        spec="queries:float[N,D] keys:float[N,D]",
        reference=info_nce,
        parameters=(Parameter("temperature", 0.07, _TEMPERATURE),),
        keywords=(
            "in-batch negatives",
            "negatives",
            "contrastive",
            "self-supervised",
            "similarity matrix",
            "temperature",
            "matching",
            "diagonal",
        ),
    ),
    CatalogEntry(
        key="clip",
        names=(
            "CLIP loss",
            "symmetric InfoNCE",
            "symmetric contrastive loss",
            "image-text contrastive loss",
        ),
        family="metric learning",
        description=(
            "the average of the cross-entropy from images to texts and from texts to images "
            "over their cosine similarity matrix divided by a temperature, matching pairs on "
            "the diagonal"
        ),
        spec="image_embeddings:float[N,D] text_embeddings:float[N,D]",
        reference=clip_contrastive,
        parameters=(Parameter("temperature", 0.07, _TEMPERATURE),),
        keywords=(
            "image",
            "text",
            "symmetric",
            "both directions",
            "diagonal",
            "captions",
            "multimodal",
            "similarity matrix",
        ),
    ),
    CatalogEntry(
        key="nt_xent",
        names=("NT-Xent loss", "normalized temperature-scaled cross-entropy", "SimCLR loss"),
        family="metric learning",
        description=(
            "concatenate two augmented views into 2N normalized embeddings; each must pick its "
            "other view among the other 2N - 1 by cross-entropy over similarities divided by "
            "a temperature"
        ),
        spec="z1:float[N,D] z2:float[N,D]",
        reference=nt_xent,
        parameters=(Parameter("temperature", 0.5, _TEMPERATURE),),
        keywords=(
            "two views",
            "augmented views",
            "augmentations",
            "2n",
            "self-supervised",
            "simclr",
            "exclude itself",
        ),
    ),
)
