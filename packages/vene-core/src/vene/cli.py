"""The ``vene`` command: ``vene plugins``, ``vene quickstart`` and plugin-provided subcommands.

Building the parser registers every plugin but imports no torch (the plugin modules and
``vene/__init__`` load their names on first use), so ``vene --help`` answers at once. Tables are
drawn with rich; a closed pipe (``vene plugins --json | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from .hookspecs import CliCommand

__all__ = ["CliCommand", "main", "build_parser", "print_table", "installed_packages"]


def installed_packages() -> list[tuple[str, str]]:
    """(distribution, version) of every installed vene package: vene-core and each distribution
    that registers entry points in the ``vene`` group, sorted by name."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        if not name:
            continue
        if name == "vene-core" or any(ep.group == "vene" for ep in dist.entry_points):
            found.setdefault(name, dist.version)
    if "vene-core" not in found:  # running from a source tree without installed metadata
        from ._version import __version__

        found["vene-core"] = __version__
    return sorted(found.items())


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None, file: Any = None
) -> None:
    """Print ``rows`` as a table (rich; plain text with no colour when the output is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(str(c), overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console(file=file or sys.stdout, soft_wrap=False).print(table)


def _plugins(args: argparse.Namespace) -> int:
    from .plugins import Registry, get_plugin_manager

    registry = Registry(get_plugin_manager())
    infos = registry.plugins()
    if args.json:
        print(json.dumps([{"name": i.name, "version": i.version, "provides": i.provides} for i in infos], indent=2))
        return 0
    rows = [
        (info.name if k == 0 else "", info.version if k == 0 else "", kind, ", ".join(names))
        for info in infos
        for k, (kind, names) in enumerate(sorted(info.provides.items()) or [("", [])])
    ]
    print_table(["plugin", "version", "provides", "names"], rows)
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from ._quickstart import main as quickstart

    for line in quickstart(seed=args.seed):
        print(line)
    return 0


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def _seed_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0)


def _builtin_commands() -> list[CliCommand]:
    return [
        CliCommand(
            name="plugins",
            help="list installed plugins, their versions and what each registers",
            run=_plugins,
            configure=_json_flag,
        ),
        CliCommand(
            name="quickstart",
            help="run an interchange and a collection on a small model built offline",
            run=_quickstart,
            configure=_seed_flag,
        ),
    ]


class _VersionAction(argparse.Action):
    """``--version``: every installed vene package, computed only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        print("\n".join(f"{name} {version}" for name, version in installed_packages()))
        parser.exit()


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, CliCommand]]:
    from .plugins import get_plugin_manager

    parser = argparse.ArgumentParser(prog="vene", description="Interventions on PyTorch models.")
    parser.add_argument("--version", action=_VersionAction, help="print every installed vene package's version")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log what vene does (-v: info, -vv: debug)"
    )
    sub = parser.add_subparsers(dest="command")
    commands: dict[str, CliCommand] = {}
    plugin_commands: list[Any] = []
    for group in get_plugin_manager().hook.vene_cli_commands():
        plugin_commands.extend(group or ())
    for cmd in _builtin_commands() + plugin_commands:
        if cmd.name in commands:
            from ._errors import PluginError

            raise PluginError(f"two plugins add the CLI command {cmd.name!r}; disable one.")
        commands[cmd.name] = cmd
        p = sub.add_parser(cmd.name, help=cmd.help)
        if cmd.configure is not None:
            cmd.configure(p)
    return parser, commands


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser, commands = build_parser()
        args = parser.parse_args(argv)
        _configure_logging(args.verbose)
        if not args.command:
            parser.print_help()
            code: Any = 0
        else:
            code = commands[args.command].run(args)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler, not at exit
    except BrokenPipeError:
        # the reader went away (``vene plugins --json | head``): stop quietly, as Unix tools do;
        # point stdout at devnull so the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
