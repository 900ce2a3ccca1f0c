"""The ``vene`` command: ``vene plugins``, ``vene quickstart`` and plugin-provided subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .hookspecs import CliCommand

__all__ = ["CliCommand", "main", "build_parser"]


def _plugins(args: argparse.Namespace) -> int:
    from .plugins import Registry, get_plugin_manager

    registry = Registry(get_plugin_manager())
    infos = registry.plugins()
    if args.json:
        print(json.dumps([{"name": i.name, "version": i.version, "provides": i.provides} for i in infos], indent=2))
        return 0
    for info in infos:
        print(f"{info.name} {info.version}")
        for kind, names in info.provides.items():
            print(f"  {kind}: {', '.join(names)}")
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from ._quickstart import main as quickstart

    quickstart(seed=args.seed)
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


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, CliCommand]]:
    from ._version import __version__
    from .plugins import get_plugin_manager

    parser = argparse.ArgumentParser(prog="vene", description="Interventions on PyTorch models.")
    parser.add_argument("--version", action="version", version=f"vene-core {__version__}")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    code = commands[args.command].run(args)
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
