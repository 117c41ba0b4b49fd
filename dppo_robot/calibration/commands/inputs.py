"""Command-line inputs shared by the calibrate subcommands: the board spec and image files."""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import cv2
import numpy as np

from dppo_robot.calibration.charuco import BoardSpec
from dppo_robot.typed_config import from_dict, load_yaml


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("ChArUco board (a YAML, or the flags)")
    g.add_argument("--board", help="board YAML (squares_x, squares_y, square_m, marker_m, dictionary)")
    g.add_argument("--squares", default="7x5", help="squares across x down (default 7x5)")
    g.add_argument("--square-m", type=float, default=0.04, help="square edge, m, as printed (measure it)")
    g.add_argument("--marker-m", type=float, default=0.03, help="marker edge, m, as printed")
    g.add_argument("--dictionary", default="DICT_5X5_100", help="ArUco dictionary of the board's markers")


def board_from_args(args: argparse.Namespace) -> BoardSpec:
    if args.board:
        return load_yaml(BoardSpec, args.board)
    try:
        sx, sy = (int(v) for v in args.squares.lower().split("x"))
    except ValueError:
        raise ValueError(f"--squares must look like 7x5, got {args.squares!r}") from None
    data = {"squares_x": sx, "squares_y": sy, "square_m": args.square_m, "marker_m": args.marker_m}
    return from_dict(BoardSpec, {**data, "dictionary": args.dictionary}, "command line")


def expand_images(patterns: list[str]) -> list[Path]:
    """Files named by paths, folders (their .png/.jpg) or glob patterns, sorted; FileNotFoundError if none."""
    out: list[Path] = []
    for p in patterns:
        path = Path(p)
        if path.is_dir():
            out += [f for f in sorted(path.iterdir()) if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")]
        elif any(ch in p for ch in "*?["):
            out += [Path(f) for f in sorted(glob.glob(p))]
        else:
            out.append(path)
    if not out:
        raise FileNotFoundError(f"no images match {patterns}")
    return out


def read_image(path: str | Path) -> np.ndarray:
    """A grayscale uint8 image; FileNotFoundError when it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return img
