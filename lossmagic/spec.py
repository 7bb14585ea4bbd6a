"""Input specs: the names, dtypes, shapes and value domains of a loss function's inputs.

A spec is a space-separated list of items ``NAME:DTYPE[DIMS]``::

    >>> spec = parse_spec("logits:float[N,C] targets:long[N]<C")
    >>> [item.name for item in spec.items]
    ['logits', 'targets']
    >>> trial = make_trial(spec, spec.trial_sizes()[0], seed=0)
    >>> tuple(trial["logits"].shape), trial["targets"].dtype
    ((4, 5), torch.int64)

DTYPE is ``float``, ``long``, ``int`` or ``bool``. DIMS are integers or symbols; a symbol
binds to one size per trial and takes several sizes across trials, ``N=1`` among them.
Integer tensors may add ``<SYMBOL`` or ``<INT``, an exclusive upper bound on values from 0.
Float tensors may add a domain: ``~prob`` (non-negative, sums to 1 over the last dim),
``~unit`` ([0, 1]), ``~binary`` ({0, 1}), ``~sign`` ({-1, 1}) or ``~positive`` (> 0).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from lossmagic.exceptions import InputSpecError

__all__ = [
    "DEFAULT_SPEC",
    "DOMAINS",
    "TRIAL_VARIANTS",
    "InputItem",
    "InputSpec",
    "make_trial",
    "parse_spec",
]

DEFAULT_SPEC = "logits:float[N,C] targets:long[N]<C"

DOMAINS = ("prob", "unit", "binary", "sign", "positive")

_DTYPES: dict[str, torch.dtype] = {
    "float": torch.float32,
    "long": torch.int64,
    "int": torch.int32,
    "bool": torch.bool,
}

_ITEM = re.compile(
    r"^(?P<name>[A-Za-z_]\w*)"
    r":(?P<dtype>\w+)"
    r"\[(?P<dims>[^\]]*)\]"
    r"(?:<(?P<bound>\w+))?"
    r"(?:~(?P<domain>\w+))?$"
)

# Sizes that each symbol takes across ordinary trials. The first trial uses the
# first size of every symbol, and so on; N=1 is among them so that batch-of-one
# bugs show up.
_SYMBOL_SIZES: dict[str, tuple[int, ...]] = {
    "N": (4, 1, 7),
    "C": (5, 3, 2),
    "D": (8, 4, 16),
    "H": (8, 5, 4),
    "W": (8, 6, 4),
    "L": (6, 4, 9),
    "K": (3, 4, 2),
    "Z": (4, 6, 3),
}
_OTHER_SIZES = (4, 3, 5)

TRIAL_VARIANTS = ("ordinary", "saturated", "zeros", "one_class", "tiny", "huge")
"""Kinds of trial input: ordinary random values, then edge cases inside each domain."""


@dataclass(frozen=True)
class InputItem:
    """One input of the loss function."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]
    bound: int | str | None = None
    domain: str | None = None

    @property
    def is_float(self) -> bool:
        return self.dtype == "float"

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def shape_text(self, sizes: Mapping[str, int] | None = None) -> str:
        """Format the shape, with symbols replaced by ``sizes`` where given."""
        dims = [str(sizes.get(d, d)) if sizes and isinstance(d, str) else str(d) for d in self.dims]
        return f"[{', '.join(dims)}]"

    def __str__(self) -> str:
        text = f"{self.name}:{self.dtype}[{','.join(str(d) for d in self.dims)}]"
        if self.bound is not None:
            text += f"<{self.bound}"
        if self.domain is not None:
            text += f"~{self.domain}"
        return text


@dataclass(frozen=True)
class InputSpec:
    """An ordered list of inputs; the loss receives them positionally in this order."""

    items: tuple[InputItem, ...]
    text: str = field(default="", compare=False)

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]

    @property
    def symbols(self) -> list[str]:
        """Return every size symbol in order of first use, bounds included."""
        found: list[str] = []
        for item in self.items:
            for dim in (*item.dims, item.bound):
                if isinstance(dim, str) and dim not in found:
                    found.append(dim)
        return found

    def trial_sizes(self) -> list[dict[str, int]]:
        """Return the symbol sizes of each ordinary trial; one trial has every ``N`` = 1."""
        count = len(_SYMBOL_SIZES["N"])
        trials = []
        for index in range(count):
            sizes = {s: _SYMBOL_SIZES.get(s, _OTHER_SIZES)[index] for s in self.symbols}
            trials.append(sizes)
        return trials

    def describe(self) -> str:
        """Describe each input in one line for a prompt."""
        lines = []
        for item in self.items:
            torch_name = str(item.torch_dtype).removeprefix("torch.")
            line = f"- {item.name}: torch.{torch_name} tensor of shape {item.shape_text()}"
            if item.bound is not None:
                line += f", integer values in [0, {item.bound})"
            if item.domain is not None:
                line += f", {_DOMAIN_TEXT[item.domain]}"
            lines.append(line)
        return "\n".join(lines)

    def __str__(self) -> str:
        return " ".join(str(item) for item in self.items)


_DOMAIN_TEXT = {
    "prob": "probabilities that sum to 1 over the last dimension",
    "unit": "values in [0, 1]",
    "binary": "values in {0, 1}",
    "sign": "values in {-1, 1}",
    "positive": "values greater than 0",
}


def parse_spec(text: str | None) -> InputSpec:
    """Parse an input spec; an empty or missing one gives the classification default."""
    source = (text or "").strip() or DEFAULT_SPEC
    items = [_parse_item(source, raw) for raw in source.split()]

    names = [item.name for item in items]
    for name in names:
        if names.count(name) > 1:
            raise InputSpecError(source, name, "the name appears more than once")

    return InputSpec(items=tuple(items), text=source)


def _parse_item(spec: str, raw: str) -> InputItem:
    match = _ITEM.match(raw)
    if match is None:
        raise InputSpecError(spec, raw, "expected NAME:DTYPE[DIMS] with optional <BOUND or ~DOMAIN")

    dtype = match["dtype"]
    if dtype not in _DTYPES:
        raise InputSpecError(spec, raw, f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")

    dims: list[int | str] = []
    for part in filter(None, (p.strip() for p in match["dims"].split(","))):
        dims.append(_parse_size(spec, raw, part))

    bound = match["bound"]
    if bound is not None and dtype not in ("long", "int"):
        raise InputSpecError(spec, raw, "a <BOUND applies only to long or int tensors")

    domain = match["domain"]
    if domain is not None and dtype != "float":
        raise InputSpecError(spec, raw, "a ~DOMAIN applies only to float tensors")
    if domain is not None and domain not in DOMAINS:
        raise InputSpecError(
            spec, raw, f"unknown domain {domain!r}; use one of {', '.join(DOMAINS)}"
        )
    if domain == "prob" and not dims:
        raise InputSpecError(spec, raw, "~prob needs at least one dimension to sum over")

    return InputItem(
        name=match["name"],
        dtype=dtype,
        dims=tuple(dims),
        bound=_parse_size(spec, raw, bound) if bound is not None else None,
        domain=domain,
    )


def _parse_size(spec: str, raw: str, part: str) -> int | str:
    if part.isdigit():
        if int(part) < 1:
            raise InputSpecError(spec, raw, f"size {part} must be at least 1")
        return int(part)
    if not part.isidentifier():
        raise InputSpecError(spec, raw, f"{part!r} is neither a size nor a symbol")
    return part


def make_trial(
    spec: InputSpec,
    sizes: Mapping[str, int],
    seed: int,
    variant: str = "ordinary",
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Build one set of inputs for ``spec`` with symbols bound to ``sizes``.

    ``variant`` picks ordinary random values or an edge case; every value stays inside
    its item's domain and bound. Float inputs use ``dtype`` and require gradients.
    """
    if variant not in TRIAL_VARIANTS:
        raise ValueError(f"unknown trial variant {variant!r}; use one of {TRIAL_VARIANTS}")

    generator = torch.Generator().manual_seed(seed)
    trial: dict[str, torch.Tensor] = {}
    for item in spec.items:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in item.dims)
        if item.is_float:
            value = _float_values(item, shape, generator, variant).to(dtype)
            trial[item.name] = value.requires_grad_(True)
        else:
            trial[item.name] = _integer_values(item, shape, sizes, generator, variant)
    return trial


def _float_values(
    item: InputItem, shape: tuple[int, ...], generator: torch.Generator, variant: str
) -> torch.Tensor:
    normal = torch.randn(shape, generator=generator, dtype=torch.float64)
    uniform = torch.rand(shape, generator=generator, dtype=torch.float64)
    coin = torch.randint(0, 2, shape, generator=generator).to(torch.float64)
    domain = item.domain

    if domain == "prob":
        scale = {"saturated": 50.0, "tiny": 1e-3, "huge": 20.0}.get(variant, 1.0)
        if variant == "zeros":
            return torch.full(shape, 1.0 / shape[-1], dtype=torch.float64)
        return torch.softmax(normal * scale, dim=-1)
    if domain == "unit":
        values = {"saturated": coin, "zeros": torch.zeros(shape, dtype=torch.float64)}
        return values.get(variant, uniform)
    if domain == "binary":
        return torch.zeros(shape, dtype=torch.float64) if variant == "zeros" else coin
    if domain == "sign":
        return coin * 2 - 1
    if domain == "positive":
        scale = {"tiny": 1e-6, "huge": 1e6}.get(variant, 1.0)
        return (uniform + 0.05) * scale

    if variant == "saturated":
        return normal.sign() * 50.0
    if variant == "zeros":
        return torch.zeros(shape, dtype=torch.float64)
    if variant == "tiny":
        return normal * 1e-6
    if variant == "huge":
        return normal * 1e4
    return normal


def _integer_values(
    item: InputItem,
    shape: tuple[int, ...],
    sizes: Mapping[str, int],
    generator: torch.Generator,
    variant: str,
) -> torch.Tensor:
    if item.bound is None:
        high = 2 if item.dtype == "bool" else 10
    elif isinstance(item.bound, str):
        high = sizes[item.bound]
    else:
        high = item.bound

    if variant in ("one_class", "zeros"):
        values = torch.zeros(shape, dtype=torch.int64)
    else:
        values = torch.randint(0, high, shape, generator=generator)
    return values.to(item.torch_dtype)
