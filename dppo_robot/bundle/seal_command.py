"""`dppo-robot bundle seal DIR`: check a bundle's files and write its manifest digest.

For bundles written before bundle.yaml carried a digest (they are refused on load until sealed),
and for a manifest edited on purpose after review. The digest is computed from the manifest's
content, so sealing an unchanged manifest twice writes the same file.
"""

from __future__ import annotations

import argparse

from dppo_robot.bundle.manifest import seal_manifest
from dppo_robot.runtime.errors import BundleError
from dppo_robot.typed_config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="policy bundle directory")


def run(args: argparse.Namespace) -> int:
    try:
        m = seal_manifest(args.bundle)
    except ConfigError as e:
        raise BundleError(str(e)) from None
    print(f"sealed bundle '{m.name}' ({len(m.files)} files verified): {m.digest}")
    return 0
