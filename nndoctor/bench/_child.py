"""Child interpreter of the bench for a zoo case: build the subject, plant the fault, check.

    python -m nndoctor.bench._child ZOO_NAME --seed N --json PATH [--fault NAME]

Runs in its own interpreter so that one case cannot leak state into the next.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zoo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True)
    parser.add_argument("--fault")
    args = parser.parse_args(argv)

    from nndoctor.bench.runner import BENCH_EXPERIMENT_SECONDS
    from nndoctor.engine import Selection, check_subject
    from nndoctor.faults.registry import get_fault
    from nndoctor.report import json as json_report
    from nndoctor.zoo import get_zoo

    subject = get_zoo(args.zoo).build(seed=args.seed, device="cpu")
    if args.fault:
        fault = get_fault(args.fault)
        assert fault.transform is not None, f"{args.fault} is not a subject fault"
        subject = fault.transform(subject)
    report = check_subject(
        subject, selection=Selection(experiment_seconds=BENCH_EXPERIMENT_SECONDS), seed=args.seed
    )
    json_report.write(report, args.json)


if __name__ == "__main__":
    main()
