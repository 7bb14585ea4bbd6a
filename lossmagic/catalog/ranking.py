"""Ranking losses, written from their published formulas."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lossmagic.catalog.entry import CatalogEntry, Parameter

__all__ = ["ENTRIES"]


def margin_ranking(
    x1: torch.Tensor, x2: torch.Tensor, targets: torch.Tensor, margin: float = 0.0
) -> torch.Tensor:
    """max(0, -y (x1 - x2) + margin), where y = 1 means x1 should rank above x2.

    Source: Herbrich, Graepel and Obermayer, "Large Margin Rank Boundaries for Ordinal
    Regression", 2000, as the pairwise criterion of torch.nn.MarginRankingLoss.
    """
    return torch.clamp(-targets * (x1 - x2) + margin, min=0).mean()


def bpr(positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalized ranking: -log sigmoid(positive - negative), averaged.

    Source: Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback",
    UAI 2009, equation 7 without the weight penalty.
    """
    return F.softplus(negative_scores - positive_scores).mean()


def ranknet(
    scores_i: torch.Tensor, scores_j: torch.Tensor, preference: torch.Tensor
) -> torch.Tensor:
    """RankNet: binary cross-entropy between sigmoid(s_i - s_j) and the target P(i > j).

    Source: Burges et al., "Learning to Rank using Gradient Descent", ICML 2005, section 3.
    """
    return F.binary_cross_entropy_with_logits(scores_i - scores_j, preference)


def listnet(scores: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """ListNet top-one: cross-entropy between softmax(relevance) and softmax(scores) per list.

    Source: Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach",
    ICML 2007, equations 4 and 6.
    """
    target = torch.softmax(relevance, dim=-1)
    return -(target * torch.log_softmax(scores, dim=-1)).sum(dim=-1).mean()


ENTRIES = (
    CatalogEntry(
        key="margin_ranking",
        elementwise=True,
        names=("margin ranking loss", "pairwise ranking hinge loss", "MarginRankingLoss"),
        family="ranking",
        description=(
            "max(0, -y (x1 - x2) + margin) where y = 1 means the first score should be ranked "
            "higher than the second and y = -1 the reverse"
        ),
        spec="x1:float[N] x2:float[N] targets:float[N]~sign",
        reference=margin_ranking,
        parameters=(Parameter("margin", 0.0),),
        keywords=("rank", "ranked higher", "pairwise", "order", "-1", "+1", "preference"),
    ),
    CatalogEntry(
        key="bpr",
        elementwise=True,
        names=("BPR loss", "Bayesian personalized ranking", "pairwise logistic ranking loss"),
        family="ranking",
        description=(
            "minus the log-sigmoid of the score of a positive item minus the score of a "
            "negative item, for implicit-feedback recommendation"
        ),
        spec="positive_scores:float[N] negative_scores:float[N]",
        reference=bpr,
        keywords=(
            "recommendation",
            "recommender",
            "implicit feedback",
            "items",
            "user",
            "positive item",
            "negative item",
            "clicked",
            "log-sigmoid",
        ),
    ),
    CatalogEntry(
        key="ranknet",
        elementwise=True,
        names=("RankNet loss", "pairwise cross-entropy ranking"),
        family="ranking",
        description=(
            "binary cross-entropy between the sigmoid of the score difference of two "
            "documents and the target probability that the first ranks above the second"
        ),
        spec="scores_i:float[N] scores_j:float[N] preference:float[N]~unit",
        reference=ranknet,
        keywords=(
            "documents",
            "pairwise",
            "probability",
            "ranks above",
            "search",
            "score difference",
        ),
    ),
    CatalogEntry(
        key="listnet",
        names=("ListNet loss", "listwise softmax cross-entropy", "ListNet top-one"),
        family="ranking",
        description=(
            "cross-entropy between the softmax of the true relevance labels and the softmax "
            "of the predicted scores over each list of documents"
        ),
        spec="scores:float[N,L] relevance:float[N,L]",
        reference=listnet,
        keywords=(
            "listwise",
            "list",
            "documents",
            "relevance",
            "permutation",
            "top-one",
            "learning to rank",
            "search results",
        ),
    ),
)
