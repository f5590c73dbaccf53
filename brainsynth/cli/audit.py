"""``brainsynth audit``: are any synthetic brains copies of training images?"""

from __future__ import annotations

import argparse

from brainsynth.cli.options import output_path
from brainsynth.cli.progress import work_bar


def add_audit_parser(subparsers, subparser) -> None:
    """The ``audit`` command's options."""
    audit = subparser(
        subparsers,
        "audit",
        "Look for copies of training images among synthetic brains (a memorisation audit) and write a report.",
    )
    audit.add_argument("--data", required=True, metavar="TRAIN_DIR", help="the training images (any NIfTI folder)")
    audit.add_argument(
        "--samples", metavar="DATASET_DIR", help="the samples: a folder made by generate, or any NIfTI folder"
    )
    audit.add_argument(
        "--model",
        metavar="M",
        help="the model: its grid, and its autoencoder for the latent criterion; with --n, the sampler",
    )
    audit.add_argument("--n", type=int, metavar="N", help="draw N samples from --model (kept in OUTPUT/samples)")
    audit.add_argument(
        "--held-out",
        metavar="DIR",
        help="real images not used in training, to calibrate on (default: each training image left out in turn)",
    )
    audit.add_argument(
        "--false-positive-rate",
        type=float,
        default=0.05,
        metavar="P",
        help="share of real images unseen in training that may be flagged (default 0.05)",
    )
    audit.add_argument(
        "--criteria",
        type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
        metavar="LIST",
        help="pixel, latent (default: both with --model, pixel alone without)",
    )
    audit.add_argument("--candidates", type=int, default=5, metavar="K", help="first-pass candidates (default 5)")
    audit.add_argument("--seed", type=int, default=0, help="base seed of the drawn samples (default 0)")
    audit.add_argument("--batch-size", type=int, default=1, metavar="B", help="brains per network pass with --n")
    audit.add_argument("--device", default="auto", help="where the networks run (default auto)")
    audit.add_argument(
        "--output", "-o", required=True, type=output_path, metavar="REPORT_DIR", help="report folder (must be new)"
    )
    audit.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def run_audit(args: argparse.Namespace) -> int:
    """``brainsynth audit``."""
    from brainsynth.audit import audit
    from brainsynth.audit.report import summary
    from brainsynth.loading.names import load_model

    model = load_model(args.model) if args.model else None
    with work_bar("audit", args.quiet) as callback:
        result = audit(
            args.data,
            args.output,
            samples=args.samples,
            model=model,
            n=args.n,
            held_out=args.held_out,
            false_positive_rate=args.false_positive_rate,
            criteria=args.criteria,
            candidates=args.candidates,
            seed=args.seed,
            batch_size=args.batch_size,
            device=args.device,
            callback=callback,
        )
    s = summary(result)
    share = 100 * (s["flagged_fraction"] or 0)
    print(
        f"flagged {s['flagged']} of {s['audited']} samples ({share:.1f} %) against {s['training_images']} training "
        f"images ({', '.join(f'{c} > {t}' for c, t in s['thresholds'].items())}); real images unseen in training: "
        f"{100 * s['real_images_flagged_fraction']:.1f} % flagged; {s['unreadable']} unreadable, {s['missing']} "
        f"missing; report in {args.output}"
    )
    return 0
