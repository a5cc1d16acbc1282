"""``spinemetseg train``: train or fine-tune a model on synthetic cases, your own cases, or both.

Usage::

    spinemetseg train --output runs/a --steps 4000                         # synthetic cases made on the fly
    spinemetseg train --output runs/b --data /data/Dataset101_Spine --no-synthetic --fine-tune spinemetseg-default
    spinemetseg train --output runs/r --anatomy cases/ --fine-tune spinemetseg-default  # + real anatomy
    spinemetseg train --output runs/a --steps 4000 --resume                # continue after an interruption
    torchrun --nproc_per_node 2 -m SpineMetSegLib.cli train --output runs/c   # several GPUs / nodes

The result is ``<name>-<version>.safetensors`` and its model card ``<name>-<version>.json`` in the output
folder; add it to the catalog with ``spinemetseg models import FILE --card CARD``.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ..device_names import DEVICE_HELP
from ..progress import add_progress_option


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "train",
        help="Train or fine-tune a model on synthetic and/or your own cases",
        description="Train a 2D model on synthetic phantom cases generated on the fly and/or a folder of annotated "
        "cases (MSD / nnU-Net layout: imagesTr/, labelsTr/, dataset.json). Writes a safetensors file and a "
        "model card that 'spinemetseg models import' accepts.",
    )
    parser.add_argument("--output", required=True, help="folder for checkpoint, log, curves and the model")
    parser.add_argument("--data", metavar="FOLDER",
                        help="folder of annotated cases (imagesTr/, labelsTr/, dataset.json)")
    parser.add_argument("--anatomy", metavar="FOLDER",
                        help="folder of real case folders ('spinemetseg dataset import-vb'); lesions are drawn into "
                        "them on the fly; only the fixed split's training cases are read")
    parser.add_argument("--anatomy-fraction", type=float, default=0.5,
                        help="share of patches from real anatomy when --anatomy is given (default 0.5)")
    parser.add_argument("--anatomy-pool-size", type=int, default=12,
                        help="real-anatomy cases held at once (default 12)")
    parser.add_argument("--anatomy-tuning-cases", type=int, default=0,
                        help="real-anatomy cases from the split's tuning scans, checked with the held-out cases "
                        "(default 0)")
    parser.add_argument("--no-synthetic", action="store_true", help="no phantom cases (only --data / --anatomy)")
    parser.add_argument("--synthetic-fraction", type=float, default=0.5,
                        help="share of patches from synthetic cases when --data is given too (default 0.5)")
    parser.add_argument("--validation-cases", type=int, default=4,
                        help="held-out synthetic cases checked every --validate-every steps (default 4)")
    parser.add_argument("--folder-validation-cases", type=int, default=0,
                        help="last N cases of --data held out for validation (default 0)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool-size", type=int, default=24, help="synthetic cases held at once (default 24)")
    parser.add_argument("--refresh-every", type=int, default=20,
                        help="steps between replacing the oldest synthetic case (default 20)")
    parser.add_argument("--workers", type=int, default=1, help="background processes generating synthetic cases")
    parser.add_argument("--keep-all-channels", type=float, default=0.4,
                        help="probability that a patch keeps all sequences (else a random subset; default 0.4)")
    parser.add_argument("--lesion-fraction", type=float, default=0.5,
                        help="share of patches centred on a lesion voxel (default 0.5)")
    parser.add_argument("--validate-every", type=int, default=500)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--fine-tune", metavar="MODEL", help="start from this catalog model (NAME or NAME:VERSION)")
    parser.add_argument("--channels", type=int, nargs="+", help="UNet channels per level (default: the base card's)")
    parser.add_argument("--strides", type=int, nargs="+", help="UNet strides (default: the base card's)")
    parser.add_argument("--name", default="spinemetseg-custom", help="model name in the card")
    parser.add_argument("--version", dest="model_version", default="1.0.0", help="model version in the card")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in an --output folder that already holds a model (it is replaced)")
    add_progress_option(parser)
    parser.add_argument("--no-progress-bar", dest="progress", action="store_const", const="lines",
                        help="same as --progress lines (kept for older scripts)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..progress import progress_for
    from ..training import TrainConfig, train

    config = TrainConfig(
        output=args.output,
        steps=args.steps,
        batch_size=args.batch_size,
        patch_size=tuple(args.patch_size),
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        seed=args.seed,
        synthetic=not args.no_synthetic,
        folder=args.data,
        synthetic_fraction=args.synthetic_fraction,
        folder_validation_cases=args.folder_validation_cases,
        anatomy=args.anatomy,
        anatomy_fraction=args.anatomy_fraction,
        anatomy_pool_size=args.anatomy_pool_size,
        anatomy_tuning_cases=args.anatomy_tuning_cases,
        pool_size=args.pool_size,
        refresh_every=args.refresh_every,
        workers=args.workers,
        keep_all_channels_probability=args.keep_all_channels,
        lesion_patch_fraction=args.lesion_fraction,
        validate_every=args.validate_every,
        validation_cases=args.validation_cases if not args.no_synthetic else 0,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        device=args.device,
        threads=args.threads,
        fine_tune=args.fine_tune,
        name=args.name,
        version=args.model_version,
        network_channels=args.channels,
        network_strides=args.strides,
        command="spinemetseg " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    _check_before_training(args, config)
    result = train(config, resume=args.resume, progress=progress_for(args.progress))
    if result.model_file is not None:
        print(f"model: {result.model_file}\ncard: {result.card_file}\n"
              f"add it with: spinemetseg models import {result.model_file} --card {result.card_file}")
    return 0


def _check_before_training(args: argparse.Namespace, config) -> None:
    """Refuse a bad --output or --data in seconds, before a model is built or a case generated."""
    from ..images.outputpaths import check_output_folder
    from ..training.checks import check_run_folder, check_training_folder
    from ..training.loop import base_card

    check_output_folder("--output", args.output)
    check_run_folder(args.output, resume=args.resume, overwrite=args.overwrite)
    if args.data:
        check_training_folder(args.data, base_card(config))
