"""Correct standard losses and realistic buggy variants, as source text, for the check tests.

Each sample is (key, spec, task, source). The function is always named ``loss_fn``.
"""

from __future__ import annotations

CLASSIFY = "logits:float[N,C] targets:long[N]<C"
REGRESS = "pred:float[N,1] target:float[N,1]"
SEGMENT = "pred:float[N,1,H,W] mask:float[N,1,H,W]~binary"
TRIPLET = "anchor:float[N,D] positive:float[N,D] negative:float[N,D]"
PAIR_SIGN = "x1:float[N,D] x2:float[N,D] y:float[N]~sign"
PAIR_BINARY = "x1:float[N,D] x2:float[N,D] y:float[N]~binary"
RANK = "x1:float[N] x2:float[N] y:float[N]~sign"
DISTILL = "student:float[N,C] teacher:float[N,C]"
VAE = "recon:float[N,D] x:float[N,D] mu:float[N,Z] logvar:float[N,Z]"
EMBED = "z1:float[N,D] z2:float[N,D]"

HEADER = "import math\n\nimport torch\nimport torch.nn.functional as F\n\n"

CORRECT: list[tuple[str, str, str, str]] = [
    (
        "cross_entropy",
        CLASSIFY,
        "cross-entropy",
        """
def loss_fn(logits, targets):
    return F.cross_entropy(logits, targets)
""",
    ),
    (
        "cross_entropy_manual",
        CLASSIFY,
        "cross-entropy",
        """
def loss_fn(logits, targets):
    log_probs = torch.log_softmax(logits, dim=1)
    return -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1).mean()
""",
    ),
    (
        "focal",
        CLASSIFY,
        "focal loss with gamma 2",
        """
def loss_fn(logits, targets, gamma=2.0):
    log_p = F.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()
""",
    ),
    (
        "label_smoothing",
        CLASSIFY,
        "cross-entropy with label smoothing 0.1",
        """
def loss_fn(logits, targets, eps=0.1):
    log_p = F.log_softmax(logits, dim=-1)
    nll = -log_p.gather(1, targets[:, None]).squeeze(1)
    smooth = -log_p.mean(dim=-1)
    return ((1 - eps) * nll + eps * smooth).mean()
""",
    ),
    (
        "mse",
        REGRESS,
        "mean squared error",
        """
def loss_fn(pred, target):
    return F.mse_loss(pred, target)
""",
    ),
    (
        "mse_squeezed",
        "pred:float[N,1] target:float[N]",
        "mean squared error",
        """
def loss_fn(pred, target):
    return ((pred.squeeze(-1) - target) ** 2).mean()
""",
    ),
    (
        "l1",
        REGRESS,
        "mean absolute error",
        """
def loss_fn(pred, target):
    return (pred - target).abs().mean()
""",
    ),
    (
        "huber",
        "pred:float[N,D] target:float[N,D]",
        "huber loss with delta 1",
        """
def loss_fn(pred, target, delta=1.0):
    diff = (pred - target).abs()
    quadratic = 0.5 * diff ** 2
    linear = delta * (diff - 0.5 * delta)
    return torch.where(diff <= delta, quadratic, linear).mean()
""",
    ),
    (
        "bce_logits",
        "logits:float[N] targets:float[N]~binary",
        "binary cross-entropy",
        """
def loss_fn(logits, targets):
    return F.binary_cross_entropy_with_logits(logits, targets)
""",
    ),
    (
        "bce_probs",
        "probs:float[N]~unit targets:float[N]~binary",
        "binary cross-entropy",
        """
def loss_fn(probs, targets):
    probs = probs.clamp(1e-7, 1 - 1e-7)
    return -(targets * probs.log() + (1 - targets) * (1 - probs).log()).mean()
""",
    ),
    (
        "dice",
        SEGMENT,
        "soft dice loss",
        """
def loss_fn(pred, mask, smooth=1.0):
    p = torch.sigmoid(pred).flatten(1)
    m = mask.flatten(1)
    inter = (p * m).sum(1)
    dice = (2 * inter + smooth) / (p.sum(1) + m.sum(1) + smooth)
    return 1 - dice.mean()
""",
    ),
    (
        "iou",
        SEGMENT,
        "soft jaccard loss",
        """
def loss_fn(pred, mask, smooth=1.0):
    p = torch.sigmoid(pred)
    inter = (p * mask).sum()
    union = p.sum() + mask.sum() - inter
    return 1 - (inter + smooth) / (union + smooth)
""",
    ),
    (
        "triplet",
        TRIPLET,
        "triplet margin loss",
        """
def loss_fn(anchor, positive, negative, margin=1.0):
    d_pos = F.pairwise_distance(anchor, positive)
    d_neg = F.pairwise_distance(anchor, negative)
    return F.relu(d_pos - d_neg + margin).mean()
""",
    ),
    (
        "contrastive",
        PAIR_BINARY,
        "contrastive loss, y=1 for similar pairs",
        """
def loss_fn(x1, x2, y, margin=1.0):
    d = F.pairwise_distance(x1, x2)
    return (y * d ** 2 + (1 - y) * F.relu(margin - d) ** 2).mean()
""",
    ),
    (
        "cosine_embedding",
        PAIR_SIGN,
        "cosine embedding loss",
        """
def loss_fn(x1, x2, y, margin=0.0):
    return F.cosine_embedding_loss(x1, x2, y, margin=margin)
""",
    ),
    (
        "kl_distill",
        DISTILL,
        "KL distillation with temperature 4",
        """
def loss_fn(student, teacher, T=4.0):
    log_p = F.log_softmax(student / T, dim=-1)
    q = F.softmax(teacher / T, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean") * T * T
""",
    ),
    (
        "hinge",
        "scores:float[N] y:float[N]~sign",
        "hinge loss",
        """
def loss_fn(scores, y):
    return F.relu(1 - y * scores).mean()
""",
    ),
    (
        "margin_ranking",
        RANK,
        "margin ranking loss",
        """
def loss_fn(x1, x2, y, margin=0.5):
    return F.margin_ranking_loss(x1, x2, y, margin=margin)
""",
    ),
    (
        "infonce",
        EMBED,
        "InfoNCE with temperature 0.1 and in-batch negatives",
        """
def loss_fn(z1, z2, temperature=0.1):
    a = F.normalize(z1, dim=1)
    b = F.normalize(z2, dim=1)
    logits = a @ b.t() / temperature
    labels = torch.arange(a.shape[0], device=a.device)
    return F.cross_entropy(logits, labels)
""",
    ),
    (
        "vae_elbo",
        VAE,
        "VAE ELBO: MSE reconstruction plus KL",
        """
def loss_fn(recon, x, mu, logvar):
    rec = F.mse_loss(recon, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp())
    return (rec + kl) / x.shape[0]
""",
    ),
    (
        "kl_div_probs",
        "p:float[N,C]~prob q:float[N,C]~prob",
        "KL divergence between distributions",
        """
def loss_fn(p, q):
    return (q * (q.clamp_min(1e-12).log() - p.clamp_min(1e-12).log())).sum(-1).mean()
""",
    ),
    (
        "sum_mse",
        REGRESS,
        "sum of squared errors over the batch",
        """
def loss_fn(pred, target):
    return ((pred - target) ** 2).sum()
""",
    ),
    (
        "no_reduction",
        CLASSIFY,
        "cross-entropy with no reduction",
        """
def loss_fn(logits, targets):
    return F.cross_entropy(logits, targets, reduction="none")
""",
    ),
    (
        "nll_seg",
        "logits:float[N,C,H,W] labels:long[N,H,W]<C",
        "pixel-wise cross entropy",
        """
def loss_fn(logits, labels):
    return F.cross_entropy(logits, labels)
""",
    ),
    (
        "bce_builtin_probs",
        "probs:float[N]~unit targets:float[N]~binary",
        "binary cross-entropy on probabilities",
        """
def loss_fn(probs, targets):
    return F.binary_cross_entropy(probs, targets)
""",
    ),
    (
        "nll_log_probs",
        "log_probs:float[N,C] targets:long[N]<C",
        "negative log-likelihood",
        """
def loss_fn(log_probs, targets):
    return F.nll_loss(log_probs, targets)
""",
    ),
    (
        "hinge_embedding",
        "distances:float[N] targets:float[N]~sign",
        "hinge embedding loss with margin 1",
        """
def loss_fn(distances, targets):
    return F.hinge_embedding_loss(distances, targets, margin=1.0)
""",
    ),
    (
        "bpr",
        "positive_scores:float[N] negative_scores:float[N]",
        "Bayesian personalized ranking",
        """
def loss_fn(positive_scores, negative_scores):
    return -F.logsigmoid(positive_scores - negative_scores).mean()
""",
    ),
    (
        "gan_discriminator",
        "real_logits:float[N] fake_logits:float[N]",
        "standard GAN discriminator loss",
        """
def loss_fn(real_logits, fake_logits):
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake
""",
    ),
    (
        "poisson_nll",
        "log_rate:float[N] counts:float[N]~positive",
        "Poisson negative log-likelihood with log-rate inputs",
        """
def loss_fn(log_rate, counts):
    return F.poisson_nll_loss(log_rate, counts, log_input=True)
""",
    ),
    (
        "gaussian_nll",
        "mean:float[N,D] targets:float[N,D] variance:float[N,D]~positive",
        "Gaussian negative log-likelihood",
        """
def loss_fn(mean, targets, variance):
    return F.gaussian_nll_loss(mean, targets, variance)
""",
    ),
    (
        "poisson_rate",
        "rate:float[N]~positive counts:float[N]~positive",
        "Poisson negative log-likelihood on rates",
        """
def loss_fn(rate, counts):
    return F.poisson_nll_loss(rate, counts, log_input=False)
""",
    ),
    (
        "log_cosh",
        "pred:float[N] target:float[N]",
        "log-cosh loss",
        """
def loss_fn(pred, target):
    x = pred - target
    return (x + F.softplus(-2.0 * x) - math.log(2.0)).mean()
""",
    ),
    (
        "mmd",
        "x:float[N,D] y:float[N,D]",
        "maximum mean discrepancy with an RBF kernel",
        """
def loss_fn(x, y, sigma=1.0):
    def kernel(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))

    return kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()
""",
    ),
    (
        "sample_wasserstein",
        "x:float[N] y:float[N]",
        "1-D Wasserstein distance between two samples",
        """
def loss_fn(x, y):
    return (torch.sort(x).values - torch.sort(y).values).abs().mean()
""",
    ),
    (
        "kl_div_log_probs",
        "log_p:float[N,C] q:float[N,C]~prob",
        "KL divergence from log-probabilities to target distributions",
        """
def loss_fn(log_p, q):
    return F.kl_div(log_p, q, reduction="batchmean")
""",
    ),
]

# (key, bug class, spec, task, source); the bug class names what is wrong.
BUGGY: list[tuple[str, str, str, str, str]] = [
    (
        "distill_softmax_dim0",
        "softmax on the wrong dim",
        DISTILL,
        "KL distillation with temperature 4",
        """
def loss_fn(student, teacher, T=4.0):
    log_p = F.log_softmax(student / T, dim=0)
    q = F.softmax(teacher / T, dim=0)
    return F.kl_div(log_p, q, reduction="batchmean") * T * T
""",
    ),
    (
        "mse_squeeze_broadcast",
        "(N,1) vs (N,) broadcasting",
        REGRESS,
        "mean squared error",
        """
def loss_fn(pred, target):
    return ((pred.squeeze() - target) ** 2).mean()
""",
    ),
    (
        "log_cosh_sign",
        "sign error",
        "pred:float[N] target:float[N]",
        "log-cosh loss",
        """
def loss_fn(pred, target):
    x = pred - target
    return (x + F.softplus(2.0 * x) - math.log(2.0)).mean()
""",
    ),
    (
        "poisson_sign",
        "sign error",
        "log_rate:float[N] counts:float[N]~positive",
        "Poisson negative log-likelihood with log-rate inputs",
        """
def loss_fn(log_rate, counts):
    return (torch.exp(log_rate) + counts * log_rate).mean()
""",
    ),
    (
        "bpr_sign",
        "sign error",
        "positive_scores:float[N] negative_scores:float[N]",
        "Bayesian personalized ranking",
        """
def loss_fn(positive_scores, negative_scores):
    return -F.logsigmoid(negative_scores - positive_scores).mean()
""",
    ),
    (
        "ce_sum",
        "wrong reduction",
        CLASSIFY,
        "cross-entropy",
        """
def loss_fn(logits, targets):
    return F.cross_entropy(logits, targets, reduction="sum")
""",
    ),
    (
        "ce_sign",
        "sign error",
        CLASSIFY,
        "cross-entropy",
        """
def loss_fn(logits, targets):
    return -F.cross_entropy(logits, targets)
""",
    ),
    (
        "ce_softmax_dim0",
        "softmax on the wrong dim",
        CLASSIFY,
        "cross-entropy",
        """
def loss_fn(logits, targets):
    log_probs = torch.log_softmax(logits, dim=0)
    return -log_probs.gather(1, targets.unsqueeze(1)).mean()
""",
    ),
    (
        "ce_log_softmax_probs",
        "log of zero",
        CLASSIFY,
        "cross-entropy",
        """
def loss_fn(logits, targets):
    probs = torch.softmax(logits, dim=1)
    return -torch.log(probs.gather(1, targets.unsqueeze(1))).mean()
""",
    ),
    (
        "mse_broadcast",
        "(N,1) vs (N,) broadcasting",
        "pred:float[N,1] target:float[N]",
        "mse",
        """
def loss_fn(pred, target):
    return ((pred - target) ** 2).mean()
""",
    ),
    (
        "mse_detached",
        "detached output",
        REGRESS,
        "mse",
        """
def loss_fn(pred, target):
    return ((pred.detach() - target) ** 2).mean()
""",
    ),
    (
        "mse_not_scalar",
        "wrong reduction",
        REGRESS,
        "mse",
        """
def loss_fn(pred, target):
    return (pred - target) ** 2
""",
    ),
    (
        "bce_no_clamp",
        "log of zero",
        "probs:float[N]~unit targets:float[N]~binary",
        "bce",
        """
def loss_fn(probs, targets):
    return -(targets * probs.log() + (1 - targets) * (1 - probs).log()).mean()
""",
    ),
    (
        "dice_no_smooth",
        "log of zero",
        "pred:float[N,1,H,W]~unit mask:float[N,1,H,W]~binary",
        "dice",
        """
def loss_fn(pred, mask):
    inter = (pred * mask).sum()
    return 1 - 2 * inter / (pred.sum() + mask.sum())
""",
    ),
    (
        "triplet_swapped",
        "sign error",
        TRIPLET,
        "triplet margin loss",
        """
def loss_fn(anchor, positive, negative, margin=1.0):
    d_pos = F.pairwise_distance(anchor, positive)
    d_neg = F.pairwise_distance(anchor, negative)
    return F.relu(d_neg - d_pos + margin).mean()
""",
    ),
    (
        "inplace",
        "in-place modification",
        CLASSIFY,
        "cross-entropy",
        """
def loss_fn(logits, targets):
    targets[targets < 0] = 0
    targets += 0
    return F.cross_entropy(logits, targets)
""",
    ),
    (
        "hinge_sign",
        "sign error",
        "scores:float[N] y:float[N]~sign",
        "hinge loss",
        """
def loss_fn(scores, y):
    return F.relu(1 + y * scores).mean()
""",
    ),
    (
        "random_noise",
        "non-determinism",
        REGRESS,
        "mse",
        """
def loss_fn(pred, target):
    return ((pred - target) ** 2).mean() + 0.01 * torch.rand(())
""",
    ),
    (
        "distill_sum",
        "wrong reduction",
        DISTILL,
        "KL distillation with temperature 4",
        """
def loss_fn(student, teacher, T=4.0):
    log_p = F.log_softmax(student / T, dim=-1)
    q = F.softmax(teacher / T, dim=-1)
    return F.kl_div(log_p, q, reduction="sum") * T * T
""",
    ),
    (
        "vae_kl_sign",
        "sign error",
        VAE,
        "VAE ELBO",
        """
def loss_fn(recon, x, mu, logvar):
    rec = F.mse_loss(recon, x, reduction="sum")
    kl = 0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp())
    return (rec + kl) / x.shape[0]
""",
    ),
    (
        "cosine_no_eps",
        "log of zero",
        PAIR_SIGN,
        "cosine embedding loss",
        """
def loss_fn(x1, x2, y):
    cos = (x1 * x2).sum(1) / (x1.norm(dim=1) * x2.norm(dim=1))
    return torch.where(y > 0, 1 - cos, cos.clamp(min=0)).mean()
""",
    ),
]
