"""IPython magics: ``%%lossgen`` generates a loss from the cell body.

Settings default to the traits of ``LossMagics``, settable with
``%config LossMagics.max_iters = 6`` or in ``ipython_config.py``.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Float, Int, Unicode

from lossmagic.api import LossResult, generate_loss
from lossmagic.cli import ConsoleProgress
from lossmagic.exceptions import LossMagicError
from lossmagic.loop import LoopSettings

__all__ = ["LossMagics"]


def _unquote(args: Any) -> Any:
    """Strip one pair of matching quotes from string options.

    IPython splits magic lines without removing quotes, so ``--inputs 'a:float[N]'``
    would otherwise keep them.
    """
    for key, value in vars(args).items():
        if (
            isinstance(value, str)
            and len(value) >= 2
            and value[0] == value[-1]
            and value[0] in "'\""
        ):
            setattr(args, key, value[1:-1])
    return args


@magics_class
class LossMagics(Magics):
    """Generate validated loss functions from plain-language cells."""

    backend = Unicode("embedded", help="Model backend: embedded, transformers or openai.").tag(
        config=True
    )
    model = Unicode("", help="Model path or id for the backend.").tag(config=True)
    base_url = Unicode("", help="Base URL of an OpenAI-compatible server.").tag(config=True)
    device = Unicode("auto", help="Device for in-process models: auto, cpu, cuda or cuda:N.").tag(
        config=True
    )
    max_iters = Int(4, help="Maximum generate-and-validate rounds per cell.").tag(config=True)
    temperature = Float(0.7, help="Sampling temperature; 0 is greedy.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.results: list[LossResult] = []

    @magic_arguments()
    @argument("--name", default="loss_fn", help="Name to define the validated function under.")
    @argument(
        "--inputs", default=None, help="Input spec, e.g. 'logits:float[N,C] targets:long[N]<C'."
    )
    @argument("--backend", default=None, help="embedded, transformers or openai.")
    @argument("--model", default=None, help="Model path or id for the backend.")
    @argument("--base-url", default=None, help="Base URL of an OpenAI-compatible server.")
    @argument("--device", default=None, help="auto, cpu, cuda or cuda:N.")
    @argument("--max-iters", type=int, default=None, help="Maximum generate-and-validate rounds.")
    @argument("--seed", type=int, default=0, help="Sampling seed of the first iteration.")
    @argument("--temperature", type=float, default=None, help="Sampling temperature; 0 is greedy.")
    @argument("--quiet", action="store_true", help="Show no progress, only the result.")
    @cell_magic
    def lossgen(self, line: str, cell: str) -> LossResult | None:
        """Generate a loss function from the cell body and define it in the namespace."""
        args = _unquote(parse_argstring(self.lossgen, line))
        task = cell.strip()
        if not task:
            raise UsageError(
                "%%lossgen needs a task in the cell body, for example: focal loss with gamma 2."
            )
        max_iters = args.max_iters if args.max_iters is not None else self.max_iters
        if max_iters < 1:
            raise UsageError(f"invalid --max-iters {max_iters}: use 1 or more.")

        settings = LoopSettings(
            max_iters=max_iters,
            seed=args.seed,
            temperature=args.temperature if args.temperature is not None else self.temperature,
        )
        try:
            result = generate_loss(
                task,
                inputs=args.inputs,
                name=args.name,
                backend=args.backend or self.backend,
                model=args.model or self.model or None,
                device=args.device or self.device,
                base_url=args.base_url or self.base_url or None,
                settings=settings,
                progress=None if args.quiet else ConsoleProgress(sys.stdout),
            )
        except LossMagicError as exc:
            raise UsageError(str(exc)) from None

        self.results.append(result)
        if result.validated:
            assert self.shell is not None
            self.shell.user_ns[args.name] = result.load()
            print(f"Defined {args.name}() from {result.record_path.parent}")
        else:
            print(f"Nothing was defined: {result.message}")
            if result.code:
                print("Last attempt:\n" + result.code)
        return result
