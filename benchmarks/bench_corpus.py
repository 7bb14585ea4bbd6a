"""Measure the checks on the corpus of standard losses and their buggy variants.

Run from the repository root::

    python -m benchmarks.bench_corpus [--cases focal,dice] [--no-probes] [--json OUT]

Every correct loss and every buggy variant is validated once in the sandbox, as the
generate loop validates a candidate: the contract checks, the probes (unless
``--no-probes``) and, when the catalog matches the case's task, the cross-check against
the reference. The script prints how many correct losses are accepted, how many
variants of each bug class the generic checks reject and how many more the cross-check
rejects, the false rejections, and the seconds per validation and per check.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.corpus import BUG_CLASSES, LossCase, all_cases
from lossmagic.catalog.retrieval import reference_for
from lossmagic.checks.reference import CHECK_NAME
from lossmagic.sandbox import Sandbox
from lossmagic.spec import parse_spec

NAME = "loss_fn"


@dataclass
class Verdict:
    """What the checks said about one source."""

    case: str
    bug: str
    """The bug class, or ``correct`` for the correct implementation."""
    generic_failures: list[str]
    reference: str
    """The cross-check's verdict: pass, fail, skip, or ``none`` when no reference matched."""
    seconds: float
    check_seconds: dict[str, float] = field(default_factory=dict)
    reference_message: str = ""

    @property
    def generic_rejects(self) -> bool:
        return bool(self.generic_failures)

    @property
    def rejects(self) -> bool:
        return self.generic_rejects or self.reference == "fail"


def validate(sandbox: Sandbox, case: LossCase, bug: str, source: str, probes: bool) -> Verdict:
    """Validate one source with the options that the generate loop would pass."""
    options: dict[str, Any] = {"task": case.task, "probes": probes}
    reference = reference_for(case.task, parse_spec(case.spec))
    if reference is not None:
        options["reference"] = reference

    started = time.perf_counter()
    report = sandbox.validate(source, NAME, case.spec, seed=0, options=options)
    seconds = time.perf_counter() - started

    generic = [c.name for c in report.checks if c.authoritative and c.failed]
    if report.outcome != "completed" and not generic:
        generic = [report.outcome]
    cross = next((c for c in report.checks if c.name == CHECK_NAME), None)
    return Verdict(
        case=case.key,
        bug=bug,
        generic_failures=generic,
        reference="none" if cross is None else cross.verdict,
        seconds=seconds,
        check_seconds={c.name: c.seconds for c in report.checks},
        reference_message="" if cross is None else cross.message,
    )


def run(cases: list[LossCase], probes: bool, progress: bool = True) -> list[Verdict]:
    """Validate every correct loss and every variant of ``cases``."""
    verdicts = []
    with Sandbox(timeout=120.0) as sandbox:
        for number, case in enumerate(cases, 1):
            jobs = [("correct", case.source), *case.variants()]
            for bug, source in jobs:
                verdicts.append(validate(sandbox, case, bug, source, probes))
            if progress:
                print(f"[{number}/{len(cases)}] {case.key}", file=sys.stderr, flush=True)
    return verdicts


def summarize(verdicts: list[Verdict]) -> dict[str, Any]:
    """Count acceptances, rejections per bug class and time per check."""
    correct = [v for v in verdicts if v.bug == "correct"]
    buggy = [v for v in verdicts if v.bug != "correct"]

    classes: dict[str, dict[str, int]] = defaultdict(
        lambda: {"variants": 0, "generic": 0, "with_cross_check": 0, "cross_check_only": 0}
    )
    for verdict in buggy:
        row = classes[verdict.bug]
        row["variants"] += 1
        row["generic"] += verdict.generic_rejects
        row["with_cross_check"] += verdict.rejects
        row["cross_check_only"] += verdict.rejects and not verdict.generic_rejects

    check_times: dict[str, list[float]] = defaultdict(list)
    for verdict in verdicts:
        for name, seconds in verdict.check_seconds.items():
            check_times[name].append(seconds)

    return {
        "cases": len(correct),
        "with_reference": sum(1 for v in correct if v.reference != "none"),
        "correct_accepted": sum(1 for v in correct if not v.rejects),
        "false_rejections": [asdict(v) for v in correct if v.rejects],
        "variants": len(buggy),
        "rejected_generic": sum(v.generic_rejects for v in buggy),
        "rejected_with_cross_check": sum(v.rejects for v in buggy),
        "classes": dict(classes),
        "missed": [f"{v.case}:{v.bug}" for v in buggy if not v.rejects],
        "seconds_per_validation": sum(v.seconds for v in verdicts) / max(len(verdicts), 1),
        "seconds_per_check": {k: sum(t) / len(t) for k, t in sorted(check_times.items())},
    }


def report(summary: dict[str, Any]) -> str:
    """Format the summary as the tables printed on standard output."""
    lines = [
        f"correct losses accepted: {summary['correct_accepted']}/{summary['cases']} "
        f"({summary['with_reference']} matched a catalog reference from their task)",
        f"false rejections: {len(summary['false_rejections'])}",
    ]
    for rejection in summary["false_rejections"]:
        reason = rejection["generic_failures"] or [f"reference: {rejection['reference_message']}"]
        lines.append(f"  {rejection['case']}: {'; '.join(reason)}")
    lines += [
        f"buggy variants rejected: generic checks {summary['rejected_generic']}/"
        f"{summary['variants']}, with the cross-check {summary['rejected_with_cross_check']}/"
        f"{summary['variants']}",
        "",
        "| bug class | variants | generic checks | with cross-check | added by cross-check |",
        "|---|---|---|---|---|",
    ]
    for kind, row in sorted(summary["classes"].items()):
        lines.append(
            f"| {kind} | {row['variants']} | {row['generic']} | {row['with_cross_check']} | "
            f"{row['cross_check_only']} |"
        )
    lines += ["", f"missed variants: {', '.join(summary['missed']) or 'none'}", ""]
    lines.append(f"seconds per validation: {summary['seconds_per_validation']:.2f}")
    lines.append("seconds per check (mean over every validation that ran it):")
    for name, seconds in summary["seconds_per_check"].items():
        lines.append(f"  {name}: {seconds:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="comma-separated catalog keys to run (default: all)")
    parser.add_argument("--no-probes", action="store_true", help="skip the semantic probes")
    parser.add_argument("--json", type=Path, help="also write the summary to this JSON file")
    args = parser.parse_args(argv)

    cases = all_cases()
    if args.cases:
        wanted = {key.strip() for key in args.cases.split(",")}
        unknown = wanted - {case.key for case in cases}
        if unknown:
            parser.error(f"unknown case(s) {', '.join(sorted(unknown))}")
        cases = [case for case in cases if case.key in wanted]
    unknown_classes = {bug.kind for case in cases for bug in case.bugs} - set(BUG_CLASSES)
    if unknown_classes:
        parser.error(f"the corpus uses undeclared bug classes {sorted(unknown_classes)}")

    summary = summarize(run(cases, probes=not args.no_probes))
    print(report(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    return 0 if summary["correct_accepted"] == summary["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
