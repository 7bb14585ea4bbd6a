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

import keyword
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
    "spec_from_namespace",
    "spec_from_tensors",
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
    device: str = field(default="cpu", compare=False)
    """The device of the real tensors a notebook spec was built from; "cpu" otherwise."""

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
    """Parse an input spec; a missing one (None) gives the classification default."""
    if text is not None and not text.strip():
        raise InputSpecError(text, text, "the spec is empty; leave the option out for the default")
    source = (text or "").strip() or DEFAULT_SPEC
    items = [_parse_item(source, raw) for raw in source.split()]

    names = [item.name for item in items]
    for name in names:
        if names.count(name) > 1:
            raise InputSpecError(source, name, "the name appears more than once")

    return InputSpec(items=tuple(items), text=source)


def _parse_item(spec: str, raw: str) -> InputItem:
    match = _ITEM.match(raw)
    if match is not None and keyword.iskeyword(match["name"]):
        raise InputSpecError(spec, raw, f"{match['name']!r} is a Python keyword, not a valid name")
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
        # Large but below exp() overflow in float32 (about 88), so log-variances stay usable.
        return normal.clamp(-4.0, 4.0) * 10.0
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

    if variant in ("one_class", "zeros") and item.dtype == "bool":
        # A mask with nothing selected leaves nothing to average, so it gets all True.
        values = torch.ones(shape, dtype=torch.int64)
    elif variant in ("one_class", "zeros"):
        values = torch.zeros(shape, dtype=torch.int64)
    else:
        values = torch.randint(0, high, shape, generator=generator)
    return values.to(item.torch_dtype)


# Sizes up to this stay fixed in a spec built from real tensors, so class counts and
# feature sizes keep their real values. Larger sizes become symbols, because an image
# batch of 224 x 224 would make every check slow.
_MAX_FIXED_SIZE = 64
_FREE_SYMBOLS = ("H", "W", "L", "D", "K", "Z")


def spec_from_namespace(text: str | None, namespace: Mapping[str, object]) -> InputSpec | None:
    """Build a spec from the tensors that ``text`` names, like ``outputs,labels``.

    Returns None when ``text`` is an ordinary spec (it contains a colon) or empty, and
    raises InputSpecError when a name is missing from ``namespace`` or is not a tensor.
    """
    source = (text or "").strip()
    if not source or ":" in source:
        return None

    names = [part for part in re.split(r"[\s,]+", source) if part]
    tensors: dict[str, torch.Tensor] = {}
    for name in names:
        if not name.isidentifier():
            raise InputSpecError(source, name, "expected a variable name or NAME:DTYPE[DIMS]")
        if name not in namespace:
            raise InputSpecError(source, name, "no variable of that name is defined")
        value = namespace[name]
        if not isinstance(value, torch.Tensor):
            kind = type(value).__name__
            raise InputSpecError(source, name, f"the variable is a {kind}, not a torch.Tensor")
        tensors[name] = value
    return spec_from_tensors(tensors)


def spec_from_tensors(tensors: Mapping[str, torch.Tensor]) -> InputSpec:
    """Build a spec from real tensors: their shapes, dtypes, value domains and device.

    The first dimension that every tensor with dimensions shares becomes the batch
    symbol ``N``. An integer tensor whose values index a dimension of a float tensor gets
    that dimension as its bound, written as the symbol ``C`` when it is over 64. Other
    sizes over 64 become symbols too. Float domains (prob, unit, binary, sign, positive)
    come from the values.
    """
    if not tensors:
        raise InputSpecError("", "", "name at least one tensor")

    shaped = [t for t in tensors.values() if t.dim() > 0]
    batch = shaped[0].shape[0] if shaped else None
    if batch is None or any(t.shape[0] != batch for t in shaped) or len(shaped) < 2:
        batch = None

    symbols: dict[int, str] = {}
    free = iter(_FREE_SYMBOLS)
    items = []
    bounds = {name: _label_bound(t, tensors) for name, t in tensors.items()}
    for bound in bounds.values():
        if bound is not None and bound > _MAX_FIXED_SIZE:
            symbols.setdefault(bound, "C")

    for name, t in tensors.items():
        bound = bounds[name]
        dims: list[int | str] = []
        for position, size in enumerate(t.shape):
            if position == 0 and size == batch:
                dims.append("N")
            elif size > _MAX_FIXED_SIZE:
                if size not in symbols:
                    symbols[size] = next(free, f"S{len(symbols)}")
                dims.append(symbols[size])
            else:
                dims.append(size)
        bound_value: int | str | None = bound
        if isinstance(bound, int) and bound in symbols:
            bound_value = symbols[bound]
        items.append(
            InputItem(
                name=name,
                dtype=_dtype_name(name, t),
                dims=tuple(dims),
                bound=bound_value,
                domain=_domain(t) if t.is_floating_point() else None,
            )
        )

    devices = {str(t.device) for t in tensors.values()}
    device = next(iter(devices)) if len(devices) == 1 else "cpu"
    spec = InputSpec(items=tuple(items), text="", device=device)
    return InputSpec(items=spec.items, text=str(spec), device=device)


def _dtype_name(name: str, tensor: torch.Tensor) -> str:
    if tensor.is_floating_point():
        return "float"
    if tensor.dtype == torch.bool:
        return "bool"
    if tensor.dtype == torch.int64:
        return "long"
    if tensor.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        return "int"
    raise InputSpecError(
        "", name, f"unsupported dtype {tensor.dtype}; use float, long, int or bool"
    )


def _label_bound(tensor: torch.Tensor, tensors: Mapping[str, torch.Tensor]) -> int | None:
    """Return the exclusive upper bound of an integer tensor's values, or None."""
    if tensor.is_floating_point() or tensor.dtype == torch.bool or tensor.numel() == 0:
        return None
    high = int(tensor.max()) + 1
    for other in tensors.values():
        if not other.is_floating_point():
            continue
        for dim, size in enumerate(other.shape):
            rest = other.shape[:dim] + other.shape[dim + 1 :]
            if size >= high and tuple(rest) == tuple(tensor.shape):
                return int(size)
    return max(high, 2)


def _domain(tensor: torch.Tensor) -> str | None:
    """Return the narrowest domain that every value of ``tensor`` lies in, or None."""
    values = tensor.detach().to("cpu", torch.float64)
    if values.numel() == 0 or not bool(torch.isfinite(values).all()):
        return None
    if bool(((values == 0) | (values == 1)).all()):
        return "binary"
    if bool(((values == -1) | (values == 1)).all()):
        return "sign"
    non_negative = bool((values >= 0).all())
    sums_to_one = (
        values.dim() > 0
        and values.shape[-1] > 1
        and bool(torch.allclose(values.sum(-1), torch.ones((), dtype=torch.float64), atol=1e-4))
    )
    if non_negative and sums_to_one:
        return "prob"
    if non_negative and bool((values <= 1).all()):
        return "unit"
    if bool((values > 0).all()):
        return "positive"
    return None
