"""The corpus cases: 28 standard losses, each with three or more buggy variants."""

from __future__ import annotations

from benchmarks.corpus import Bug, LossCase

_HEADER = "import math\n\nimport torch\nimport torch.nn.functional as F\n\n\n"


def _case(key: str, task: str, spec: str, body: str, *bugs: Bug) -> LossCase:
    return LossCase(key, task, spec, _HEADER + body.strip() + "\n", bugs)


CASES = (
    _case(
        "cross_entropy",
        "cross-entropy loss for multi-class classification",
        "logits:float[N,C] targets:long[N]<C",
        """
def loss_fn(logits, targets):
    log_probs = F.log_softmax(logits, dim=1)
    return F.nll_loss(log_probs, targets)
""",
        Bug("softmax_dim", "F.log_softmax(logits, dim=1)", "F.log_softmax(logits, dim=0)"),
        Bug("log_zero", "F.log_softmax(logits, dim=1)", "torch.log(F.softmax(logits, dim=1))"),
        Bug(
            "reduction",
            "F.nll_loss(log_probs, targets)",
            "F.nll_loss(log_probs, targets, reduction='sum')",
        ),
        Bug(
            "sign",
            "return F.nll_loss(log_probs, targets)",
            "return -F.nll_loss(log_probs, targets)",
        ),
    ),
    _case(
        "label_smoothing",
        "cross-entropy with label smoothing 0.1",
        "logits:float[N,C] targets:long[N]<C",
        """
def loss_fn(logits, targets):
    n_classes = logits.shape[1]
    smooth = torch.full_like(logits, 0.1 / n_classes)
    smooth = smooth.scatter(1, targets.unsqueeze(1), 0.9 + 0.1 / n_classes)
    return -(smooth * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
""",
        Bug("formula", "0.9 + 0.1 / n_classes)", "0.9)"),
        Bug("softmax_dim", "F.log_softmax(logits, dim=1)", "F.log_softmax(logits, dim=0)"),
        Bug("reduction", ".sum(dim=1).mean()", ".mean()"),
        Bug("sign", "return -(smooth", "return (smooth"),
    ),
    _case(
        "focal",
        "focal loss with gamma 2 for multi-class classification",
        "logits:float[N,C] targets:long[N]<C",
        """
def loss_fn(logits, targets):
    ce = F.cross_entropy(logits, targets, reduction="none")
    pt = torch.exp(-ce)
    return ((1 - pt) ** 2 * ce).mean()
""",
        Bug("formula", "(1 - pt) ** 2", "pt ** 2"),
        Bug("parameter", "(1 - pt) ** 2 * ce", "(1 - pt) * ce"),
        Bug("reduction", "* ce).mean()", "* ce).sum()"),
        Bug("detach", "pt = torch.exp(-ce)", "pt = torch.exp(-ce).detach() * 0 + 1"),
    ),
    _case(
        "bce_with_logits",
        "binary cross-entropy on logits",
        "logits:float[N,1] targets:float[N,1]~binary",
        """
def loss_fn(logits, targets):
    return F.binary_cross_entropy_with_logits(logits, targets)
""",
        Bug(
            "log_zero",
            "F.binary_cross_entropy_with_logits(logits, targets)",
            "-(targets * torch.log(torch.sigmoid(logits))"
            " + (1 - targets) * torch.log(1 - torch.sigmoid(logits))).mean()",
        ),
        Bug("broadcast", "logits(logits, targets)", "logits(logits, targets.view(-1))"),
        Bug("sign", "logits(logits, targets)", "logits(-logits, targets)"),
    ),
    _case(
        "bce",
        "binary cross-entropy on predicted probabilities",
        "probs:float[N]~unit targets:float[N]~binary",
        """
def loss_fn(probs, targets):
    return F.binary_cross_entropy(probs, targets)
""",
        Bug(
            "log_zero",
            "F.binary_cross_entropy(probs, targets)",
            "-(targets * torch.log(probs) + (1 - targets) * torch.log(1 - probs)).mean()",
        ),
        Bug(
            "formula",
            "F.binary_cross_entropy(probs, targets)",
            "-(targets * torch.log(probs.clamp(1e-7, 1))"
            " + (1 - targets) * torch.log(probs.clamp(1e-7, 1))).mean()",
        ),
        Bug("reduction", "entropy(probs, targets)", "entropy(probs, targets, reduction='sum')"),
    ),
    _case(
        "soft_target_cross_entropy",
        "cross-entropy against soft target distributions (mixup)",
        "logits:float[N,C] targets:float[N,C]~prob",
        """
def loss_fn(logits, targets):
    return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
""",
        Bug("softmax_dim", "F.log_softmax(logits, dim=-1)", "F.log_softmax(logits, dim=0)"),
        Bug("reduction", "dim=-1), dim=-1).mean()", "dim=-1), dim=-1).sum()"),
        Bug("formula", "F.log_softmax(logits, dim=-1)", "F.softmax(logits, dim=-1)"),
    ),
    _case(
        "multi_class_hinge",
        "multi-class hinge loss with margin 1",
        "logits:float[N,C] targets:long[N]<C",
        """
def loss_fn(logits, targets):
    return F.multi_margin_loss(logits, targets, margin=1.0)
""",
        Bug("parameter", "margin=1.0", "margin=0.0"),
        Bug("sign", "F.multi_margin_loss(logits, targets", "F.multi_margin_loss(-logits, targets"),
        Bug("reduction", "margin=1.0)", "margin=1.0, reduction='sum')"),
    ),
    _case(
        "hinge",
        "hinge loss for labels in {-1, 1}",
        "scores:float[N] targets:float[N]~sign",
        """
def loss_fn(scores, targets):
    return torch.relu(1 - targets * scores).mean()
""",
        Bug("sign", "1 - targets * scores", "1 + targets * scores"),
        Bug("formula", "torch.relu(1 - targets * scores)", "(1 - targets * scores)"),
        Bug("reduction", ".mean()", ".sum()"),
    ),
    _case(
        "mse",
        "mean squared error for regression",
        "predictions:float[N,1] targets:float[N,1]",
        """
def loss_fn(predictions, targets):
    return F.mse_loss(predictions, targets)
""",
        Bug(
            "broadcast",
            "mse_loss(predictions, targets)",
            "mse_loss(predictions, targets.squeeze(1))",
        ),
        Bug(
            "reduction",
            "mse_loss(predictions, targets)",
            "mse_loss(predictions, targets, reduction='sum')",
        ),
        Bug("formula", "F.mse_loss(predictions, targets)", "(predictions - targets).abs().mean()"),
    ),
    _case(
        "mae",
        "mean absolute error",
        "predictions:float[N,D] targets:float[N,D]",
        """
def loss_fn(predictions, targets):
    return torch.mean(torch.abs(predictions - targets))
""",
        Bug(
            "reduction",
            "torch.mean(torch.abs(predictions - targets))",
            "torch.abs(predictions - targets).sum(dim=1).mean()",
        ),
        Bug("formula", "torch.abs(predictions - targets)", "(predictions - targets)"),
        Bug("broadcast", "predictions - targets", "predictions - targets.mean(dim=1)"),
    ),
    _case(
        "huber",
        "Huber loss with delta 1.0",
        "predictions:float[N,D] targets:float[N,D]",
        """
def loss_fn(predictions, targets):
    return F.huber_loss(predictions, targets, delta=1.0)
""",
        Bug(
            "formula",
            "F.huber_loss(predictions, targets, delta=1.0)",
            "torch.where((predictions - targets).abs() < 1.0, (predictions - targets) ** 2,"
            " (predictions - targets).abs()).mean()",
        ),
        Bug("parameter", "delta=1.0", "delta=2.0"),
        Bug("reduction", "delta=1.0)", "delta=1.0, reduction='sum')"),
    ),
    _case(
        "smooth_l1",
        "smooth L1 loss with beta 1",
        "predictions:float[N,4] targets:float[N,4]",
        """
def loss_fn(predictions, targets):
    diff = torch.abs(predictions - targets)
    loss = torch.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5)
    return loss.mean()
""",
        Bug("formula", "diff - 0.5)", "diff)"),
        Bug("parameter", "0.5 * diff ** 2", "diff ** 2"),
        Bug("reduction", "return loss.mean()", "return loss.sum(dim=1).mean()"),
    ),
    _case(
        "log_cosh",
        "log-cosh loss for regression",
        "predictions:float[N] targets:float[N]",
        """
def loss_fn(predictions, targets):
    x = predictions - targets
    return torch.mean(x + F.softplus(-2.0 * x) - math.log(2.0))
""",
        Bug(
            "log_zero",
            "torch.mean(x + F.softplus(-2.0 * x) - math.log(2.0))",
            "torch.mean(torch.log(torch.cosh(x)))",
        ),
        Bug("formula", " - math.log(2.0)", ""),
        Bug("sign", "F.softplus(-2.0 * x)", "F.softplus(2.0 * x)"),
    ),
    _case(
        "quantile",
        "quantile (pinball) loss with tau 0.9",
        "predictions:float[N] targets:float[N]",
        """
def loss_fn(predictions, targets):
    error = targets - predictions
    return torch.max(0.9 * error, (0.9 - 1) * error).mean()
""",
        Bug("sign", "error = targets - predictions", "error = predictions - targets"),
        Bug("parameter", "(0.9 - 1) * error", "0.1 * error"),
        Bug("reduction", ").mean()", ").sum()"),
    ),
    _case(
        "gaussian_nll",
        "Gaussian negative log-likelihood with predicted variance",
        "mean:float[N,D] targets:float[N,D] variance:float[N,D]~positive",
        """
def loss_fn(mean, targets, variance):
    return F.gaussian_nll_loss(mean, targets, variance)
""",
        Bug(
            "formula",
            "F.gaussian_nll_loss(mean, targets, variance)",
            "(0.5 * (torch.log(variance) + (targets - mean) ** 2)).mean()",
        ),
        Bug(
            "sign",
            "F.gaussian_nll_loss(mean, targets, variance)",
            "(0.5 * (-torch.log(variance.clamp(min=1e-6))"
            " + (targets - mean) ** 2 / variance.clamp(min=1e-6))).mean()",
        ),
        Bug(
            "reduction",
            "loss(mean, targets, variance)",
            "loss(mean, targets, variance, reduction='sum')",
        ),
    ),
    _case(
        "poisson_nll",
        "Poisson negative log-likelihood with log-rate inputs",
        "log_rate:float[N] counts:float[N]~positive",
        """
def loss_fn(log_rate, counts):
    return F.poisson_nll_loss(log_rate, counts, log_input=True)
""",
        Bug("formula", "log_input=True", "log_input=False"),
        Bug(
            "sign",
            "F.poisson_nll_loss(log_rate, counts, log_input=True)",
            "(torch.exp(log_rate) + counts * log_rate).mean()",
        ),
        Bug("reduction", "log_input=True)", "log_input=True, reduction='sum')"),
    ),
    _case(
        "dice",
        "soft Dice loss with smoothing 1, per image",
        "logits:float[N,1,H,W] masks:float[N,1,H,W]~binary",
        """
def loss_fn(logits, masks):
    probs = torch.sigmoid(logits)
    inter = (probs * masks).sum(dim=(1, 2, 3))
    union = probs.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3))
    return (1 - (2 * inter + 1) / (union + 1)).mean()
""",
        Bug("formula", "(2 * inter + 1)", "(inter + 1)"),
        Bug(
            "sign",
            "return (1 - (2 * inter + 1) / (union + 1)).mean()",
            "return ((2 * inter + 1) / (union + 1)).mean()",
        ),
        Bug("formula", "probs = torch.sigmoid(logits)", "probs = logits"),
        Bug("softmax_dim", "probs = torch.sigmoid(logits)", "probs = torch.softmax(logits, dim=1)"),
    ),
    _case(
        "jaccard",
        "soft IoU (Jaccard) loss with smoothing 1, per image",
        "logits:float[N,1,H,W] masks:float[N,1,H,W]~binary",
        """
def loss_fn(logits, masks):
    probs = torch.sigmoid(logits).flatten(1)
    masks = masks.flatten(1)
    inter = (probs * masks).sum(1)
    union = probs.sum(1) + masks.sum(1) - inter
    return (1 - (inter + 1) / (union + 1)).mean()
""",
        Bug("formula", "masks.sum(1) - inter", "masks.sum(1)"),
        Bug(
            "sign",
            "return (1 - (inter + 1) / (union + 1)).mean()",
            "return ((inter + 1) / (union + 1)).mean()",
        ),
        Bug(
            "softmax_dim",
            "torch.sigmoid(logits).flatten(1)",
            "torch.softmax(logits, dim=1).flatten(1)",
        ),
    ),
    _case(
        "tversky",
        "Tversky loss with alpha 0.3 on false positives and beta 0.7 on false negatives",
        "logits:float[N,1,H,W] masks:float[N,1,H,W]~binary",
        """
def loss_fn(logits, masks):
    p = torch.sigmoid(logits).flatten(1)
    g = masks.flatten(1)
    tp = (p * g).sum(1)
    fp = (p * (1 - g)).sum(1)
    fn = ((1 - p) * g).sum(1)
    return (1 - (tp + 1) / (tp + 0.3 * fp + 0.7 * fn + 1)).mean()
""",
        Bug("parameter", "0.3 * fp + 0.7 * fn", "0.7 * fp + 0.3 * fn"),
        Bug("formula", "fn = ((1 - p) * g).sum(1)", "fn = (p * g).sum(1)"),
        Bug("sign", "return (1 - (tp + 1)", "return ((tp + 1)"),
    ),
    _case(
        "triplet",
        "triplet margin loss with margin 1",
        "anchor:float[N,D] positive:float[N,D] negative:float[N,D]",
        """
def loss_fn(anchor, positive, negative):
    return F.triplet_margin_loss(anchor, positive, negative, margin=1.0)
""",
        Bug("sign", "loss(anchor, positive, negative", "loss(anchor, negative, positive"),
        Bug("parameter", "margin=1.0", "margin=0.0"),
        Bug("reduction", "margin=1.0)", "margin=1.0, reduction='sum')"),
        Bug(
            "formula",
            "F.triplet_margin_loss(anchor, positive, negative, margin=1.0)",
            "torch.relu(((anchor - positive) ** 2).sum(1)"
            " - ((anchor - negative) ** 2).sum(1) + 1.0).mean()",
        ),
    ),
    _case(
        "contrastive",
        "contrastive loss for siamese pairs with margin 1, label 1 for similar pairs",
        "x1:float[N,D] x2:float[N,D] similar:float[N]~binary",
        """
def loss_fn(x1, x2, similar):
    d = F.pairwise_distance(x1, x2, eps=0.0)
    return (similar * d.pow(2) + (1 - similar) * F.relu(1.0 - d).pow(2)).mean()
""",
        Bug("sign", "F.relu(1.0 - d)", "F.relu(d - 1.0)"),
        Bug("formula", "similar * d.pow(2) + (1 - similar)", "(1 - similar) * d.pow(2) + similar"),
        Bug("parameter", "F.relu(1.0 - d).pow(2)", "F.relu(- d).pow(2)"),
    ),
    _case(
        "info_nce",
        "InfoNCE loss with temperature 0.07 and in-batch negatives",
        "queries:float[N,D] keys:float[N,D]",
        """
def loss_fn(queries, keys):
    q = F.normalize(queries, dim=1)
    k = F.normalize(keys, dim=1)
    logits = q @ k.T / 0.07
    return F.cross_entropy(logits, torch.arange(len(q)))
""",
        Bug("temperature", "q @ k.T / 0.07", "q @ k.T"),
        Bug(
            "softmax_dim",
            "q = F.normalize(queries, dim=1)\n    k = F.normalize(keys, dim=1)",
            "q = F.normalize(queries, dim=0)\n    k = F.normalize(keys, dim=0)",
        ),
        Bug("formula", "q = F.normalize(queries, dim=1)", "q = queries"),
        Bug("sign", "q @ k.T / 0.07", "-(q @ k.T) / 0.07"),
    ),
    _case(
        "distillation",
        "knowledge distillation loss with temperature 4 between student and teacher logits",
        "student_logits:float[N,C] teacher_logits:float[N,C]",
        """
def loss_fn(student_logits, teacher_logits):
    T = 4.0
    soft_teacher = F.softmax(teacher_logits / T, dim=-1)
    log_student = F.log_softmax(student_logits / T, dim=-1)
    return F.kl_div(log_student, soft_teacher, reduction="batchmean") * T * T
""",
        Bug("temperature", " * T * T", ""),
        Bug("reduction", 'reduction="batchmean"', 'reduction="mean"'),
        Bug(
            "temperature",
            "F.log_softmax(student_logits / T, dim=-1)",
            "F.log_softmax(student_logits, dim=-1)",
        ),
        Bug(
            "formula",
            "F.kl_div(log_student, soft_teacher,",
            "F.kl_div(soft_teacher.log(), log_student.exp(),",
        ),
    ),
    _case(
        "kl_divergence",
        "KL divergence from target distributions to the softmax of the logits",
        "logits:float[N,C] target_probs:float[N,C]~prob",
        """
def loss_fn(logits, target_probs):
    return F.kl_div(F.log_softmax(logits, dim=1), target_probs, reduction="batchmean")
""",
        Bug("reduction", 'reduction="batchmean"', 'reduction="mean"'),
        Bug("log_zero", "F.log_softmax(logits, dim=1)", "torch.log(F.softmax(logits, dim=1))"),
        Bug("formula", "F.log_softmax(logits, dim=1)", "F.softmax(logits, dim=1)"),
    ),
    _case(
        "margin_ranking",
        "margin ranking loss with margin 0.5; y = 1 means x1 should rank higher",
        "x1:float[N] x2:float[N] targets:float[N]~sign",
        """
def loss_fn(x1, x2, targets):
    return F.margin_ranking_loss(x1, x2, targets, margin=0.5)
""",
        Bug("sign", "loss(x1, x2, targets", "loss(x2, x1, targets"),
        Bug("parameter", "margin=0.5", "margin=0.0"),
        Bug("reduction", "margin=0.5)", "margin=0.5, reduction='sum')"),
    ),
    _case(
        "bpr",
        "Bayesian personalized ranking loss on positive and negative item scores",
        "positive_scores:float[N] negative_scores:float[N]",
        """
def loss_fn(positive_scores, negative_scores):
    return -F.logsigmoid(positive_scores - negative_scores).mean()
""",
        Bug("sign", "positive_scores - negative_scores", "negative_scores - positive_scores"),
        Bug(
            "log_zero",
            "F.logsigmoid(positive_scores - negative_scores)",
            "torch.log(torch.sigmoid(positive_scores - negative_scores))",
        ),
        Bug("reduction", ".mean()", ".sum()"),
    ),
    _case(
        "vae_kl",
        "VAE KL divergence of the diagonal Gaussian posterior to a standard normal",
        "mu:float[N,Z] logvar:float[N,Z]",
        """
def loss_fn(mu, logvar):
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return kl.mean()
""",
        Bug(
            "reduction",
            "torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)",
            "torch.mean(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)",
        ),
        Bug("sign", "kl = -0.5 *", "kl = 0.5 *"),
        Bug("formula", "logvar.exp()", "logvar"),
    ),
    _case(
        "gan_discriminator",
        "standard GAN discriminator loss on real and fake logits",
        "real_logits:float[N] fake_logits:float[N]",
        """
def loss_fn(real_logits, fake_logits):
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake
""",
        Bug("sign", "torch.zeros_like(fake_logits)", "torch.ones_like(fake_logits)"),
        Bug("formula", "return real + fake", "return real - fake"),
        Bug(
            "log_zero",
            "real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))",
            "real = -torch.log(torch.sigmoid(real_logits)).mean()",
        ),
    ),
)
