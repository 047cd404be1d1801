"""Arguments that several subcommands share."""

from __future__ import annotations

import argparse


def add_endpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url",
        help="S3 endpoint (default: $AWS_ENDPOINT_URL_S3, then $AWS_ENDPOINT_URL, then AWS)",
    )
