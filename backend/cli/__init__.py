"""The `motiongpt3` command line: subcommands, file input/output and previews (the top layer)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
