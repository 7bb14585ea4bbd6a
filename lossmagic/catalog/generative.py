"""Losses of generative models (VAEs, GANs) and regularizers, from their published formulas."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lossmagic.catalog.entry import CatalogEntry, Parameter

__all__ = ["ENTRIES"]


def vae_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 sum(1 + logvar - mu^2 - exp(logvar)), batch mean.

    Source: Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014, appendix B.
    """
    per_sample = -0.5 * (1.0 + logvar - mu**2 - logvar.exp()).sum(dim=-1)
    return per_sample.mean()


def vae_elbo(
    recon_logits: torch.Tensor,
    inputs: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
) -> torch.Tensor:
    """Negative ELBO: Bernoulli reconstruction summed over features + beta KL, batch mean.

    Source: Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014, equation 10
    and appendix B; beta from Higgins et al., "beta-VAE", ICLR 2017, equation 4.
    """
    reconstruction = F.binary_cross_entropy_with_logits(recon_logits, inputs, reduction="none")
    kl = -0.5 * (1.0 + logvar - mu**2 - logvar.exp()).sum(dim=-1)
    return (reconstruction.sum(dim=-1) + beta * kl).mean()


def gan_generator(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -log sigmoid(D(G(z))), averaged.

    Source: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, section 3.
    """
    return F.softplus(-fake_logits).mean()


def gan_discriminator(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))), each term averaged.

    Source: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, equation 1.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def _gan_discriminator_halved(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Compute the discriminator loss halved, as pix2pix and many code bases write it."""
    return 0.5 * gan_discriminator(real_logits, fake_logits)


def wasserstein_critic(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic loss mean(D(fake)) - mean(D(real)), without the gradient penalty.

    Source: Arjovsky, Chintala and Bottou, "Wasserstein GAN", ICML 2017, algorithm 1.
    """
    return fake_scores.mean() - real_scores.mean()


def hinge_discriminator(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss mean(max(0, 1 - D(x))) + mean(max(0, 1 + D(G(z)))).

    Source: Lim and Ye, "Geometric GAN", 2017; Miyato et al., "Spectral Normalization for
    GANs", ICLR 2018, equation 16.
    """
    return (
        torch.clamp(1.0 - real_logits, min=0).mean() + torch.clamp(1.0 + fake_logits, min=0).mean()
    )


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: mean absolute difference of vertical and horizontal neighbours.

    Source: Rudin, Osher and Fatemi, "Nonlinear Total Variation Based Noise Removal
    Algorithms", Physica D 1992 (anisotropic, mean-normalized form).
    """
    vertical = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    return vertical + horizontal


ENTRIES = (
    CatalogEntry(
        key="vae_kl",
        names=("VAE KL divergence", "KL divergence to a standard normal", "KL regularizer"),
        family="generative",
        description=(
            "-0.5 times the sum over latent dimensions of (1 + logvar - mu^2 - exp(logvar)), "
            "the KL divergence between the encoder's diagonal Gaussian and a standard normal "
            "prior, averaged over the batch"
        ),
        spec="mu:float[N,Z] logvar:float[N,Z]",
        reference=vae_kl,
        keywords=(
            "latent",
            "encoder",
            "prior",
            "standard normal",
            "gaussian",
            "mu",
            "logvar",
            "log variance",
            "variational",
            "autoencoder",
        ),
    ),
    CatalogEntry(
        key="vae_elbo",
        names=("VAE loss", "negative ELBO", "beta-VAE loss", "evidence lower bound"),
        family="generative",
        description=(
            "binary cross-entropy reconstruction from decoder logits summed over features "
            "plus beta times the KL divergence of the latent Gaussian to a standard normal, "
            "averaged over the batch"
        ),
        spec="recon_logits:float[N,D] inputs:float[N,D]~unit mu:float[N,Z] logvar:float[N,Z]",
        reference=vae_elbo,
        parameters=(Parameter("beta", 1.0, ("\N{GREEK SMALL LETTER BETA}", "kl weight")),),
        keywords=(
            "reconstruction",
            "variational",
            "autoencoder",
            "latent",
            "decoder",
            "encoder",
            "prior",
            "kl term",
        ),
    ),
    CatalogEntry(
        key="gan_generator",
        elementwise=True,
        names=("non-saturating GAN generator loss", "GAN generator loss", "generator loss"),
        family="generative",
        description=(
            "minus the log-sigmoid of the discriminator's logits on generated samples, so "
            "the generator maximizes the log-probability that fakes are judged real"
        ),
        spec="fake_logits:float[N]",
        reference=gan_generator,
        keywords=(
            "generator",
            "discriminator",
            "fake",
            "fool",
            "adversarial",
            "non-saturating",
            "generated samples",
        ),
    ),
    CatalogEntry(
        key="gan_discriminator",
        elementwise=True,
        names=("GAN discriminator loss", "discriminator loss", "adversarial discriminator loss"),
        family="generative",
        description=(
            "binary cross-entropy on logits that labels real samples 1 and generated samples "
            "0, the mean over real samples plus the mean over fake samples"
        ),
        spec="real_logits:float[N] fake_logits:float[N]",
        reference=gan_discriminator,
        keywords=(
            "discriminator",
            "real",
            "fake",
            "adversarial",
            "generated samples",
            "distinguish",
        ),
        variants=(_gan_discriminator_halved,),
    ),
    CatalogEntry(
        key="wasserstein_critic",
        elementwise=True,
        names=("Wasserstein critic loss", "WGAN critic loss", "WGAN discriminator loss"),
        family="generative",
        description=(
            "the mean critic score on generated samples minus the mean critic score on real samples"
        ),
        spec="real_scores:float[N] fake_scores:float[N]",
        reference=wasserstein_critic,
        keywords=("critic", "earth mover", "wasserstein", "real", "fake", "scores"),
    ),
    CatalogEntry(
        key="hinge_discriminator",
        elementwise=True,
        names=("hinge GAN discriminator loss", "hinge adversarial loss", "geometric GAN loss"),
        family="generative",
        description=(
            "mean of max(0, 1 - score) on real samples plus mean of max(0, 1 + score) on "
            "generated samples"
        ),
        spec="real_logits:float[N] fake_logits:float[N]",
        reference=hinge_discriminator,
        keywords=(
            "discriminator",
            "hinge",
            "real",
            "fake",
            "spectral normalization",
            "biggan",
            "adversarial",
        ),
    ),
    CatalogEntry(
        key="total_variation",
        names=("total variation loss", "TV loss", "total variation regularizer"),
        family="regularized",
        description=(
            "the mean absolute difference between vertically and horizontally neighbouring "
            "pixels, which encourages piecewise-smooth images"
        ),
        spec="images:float[N,C,H,W]",
        reference=total_variation,
        keywords=(
            "smoothness",
            "neighbouring pixels",
            "neighboring pixels",
            "denoising",
            "piecewise",
            "adjacent pixels",
            "image prior",
            "style transfer",
        ),
    ),
)
