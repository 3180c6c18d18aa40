"""Make the digits classifier that ships with the package (the miniature's fixed feature extractor).

    python -m tools.digits_classifier                    # -> molli_utils/weights/digits_classifier.pt

It trains :class:`molli_utils.fid.DigitsClassifier` with ``train_digits_classifier(seed, epochs)`` on one
thread, writes it in the book's checkpoint format, and prints the file's SHA-256: paste it into
``molli_utils.fid.DIGITS_CLASSIFIER_SHA256``. Another CPU gives other weights from the same seed, so a new
file is a new metric: re-run the stored digits rows with it (README, "Results files").
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import torch

from molli_utils import fid


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("molli_utils") / fid.DIGITS_CLASSIFIER_FILE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    net = fid.train_digits_classifier(args.seed, args.epochs)
    digest = fid.save_digits_classifier(
        net,
        args.out,
        seed=args.seed,
        epochs=args.epochs,
        torch=str(torch.__version__),
        date=dt.date.today().isoformat(),
    )
    print(f"wrote {args.out} (test accuracy {net.test_accuracy:.4f})\nSHA-256 {digest}")
    return args.out


if __name__ == "__main__":
    main()
