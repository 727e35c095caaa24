"""Command-line flags generated from a settings class, so help and env names never drift.

Each setting becomes ``--<section>-<name>`` (``--broker-ca-file``), or the short spelling an
alias gives it (``--broker``); its help shows the description, the environment variable and
the default. Flags left out do not override the environment: argparse's SUPPRESS keeps them
out of the namespace entirely. The README settings tables come from the same ``options()``
(scripts/settings_table.py), so they name the same variables, flags and defaults.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from service_common.version import dctlink_version

#: ``{(section, name): flag}``: short spellings for the flags people type most.
Aliases = Mapping[tuple[str, str], str]

_DEST_PREFIX = "setting:"

S = TypeVar("S", bound=BaseSettings)


def default_text(info: FieldInfo) -> str:
    """The default as help and README show it; a factory's default is described, not run."""
    factory = info.default_factory
    if factory is None:
        return "none" if info.default is None else str(info.default)
    if getattr(factory, "__name__", "") == "gethostname":
        return "host name"
    return "none" if factory in (list, dict, set, tuple) else "computed"


@dataclass(frozen=True)
class Option:
    """One setting: where it sits in the model and how the environment and the flags name it."""

    section: str | None  # the nested model's field name; None at the top level
    name: str
    info: FieldInfo
    env: str
    flag: str

    @property
    def dest(self) -> str:
        return f"{_DEST_PREFIX}{self.section or ''}:{self.name}"


class SettingsCli(Generic[S]):
    """Flags for every option of ``settings`` (one nesting level) and settings back from them.

    The environment prefix and nesting delimiter come from the class's ``model_config``, so a
    flag's help names exactly the variable pydantic-settings reads.
    """

    def __init__(self, settings: type[S], aliases: Aliases | None = None) -> None:
        self.settings = settings
        self.aliases: Aliases = aliases or {}
        self.env_prefix = str(settings.model_config.get("env_prefix") or "")
        self.env_delimiter = str(settings.model_config.get("env_nested_delimiter") or "__")

    def options(self) -> Iterator[Option]:
        """Every setting in model order, sections' options under their section."""
        for name, info in self.settings.model_fields.items():
            section = _section_model(info)
            if section is None:
                yield self._option(None, name, info)
            else:
                for sub_name, sub_info in section.model_fields.items():
                    yield self._option(name, sub_name, sub_info)

    def _option(self, section: str | None, name: str, info: FieldInfo) -> Option:
        parts = [part for part in (section, name) if part]
        env = self.env_prefix + self.env_delimiter.join(parts).upper()
        flag = self.aliases.get((section, name)) if section is not None else None
        return Option(section, name, info, env, flag or "--" + "-".join(parts).replace("_", "-"))

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """A "general" group for top-level options, then one group per section."""
        groups: dict[str | None, argparse._ArgumentGroup] = {
            None: parser.add_argument_group("general")
        }
        for name, info in self.settings.model_fields.items():
            if _section_model(info) is not None:
                groups[name] = parser.add_argument_group(name, info.description)
        for option in self.options():
            _add_argument(groups[option.section], option)

    def settings_from_args(self, args: argparse.Namespace) -> S:
        """Environment first, then the flags given on the command line on top.

        A flag replaces its whole setting but not its section: the environment's other options
        in that section still apply, because pydantic-settings merges nested values.
        """
        overrides: dict[str, Any] = {}
        for dest, value in vars(args).items():
            if not dest.startswith(_DEST_PREFIX):
                continue
            section, name = dest.removeprefix(_DEST_PREFIX).split(":")
            if section:
                overrides.setdefault(section, {})[name] = value
            else:
                overrides[name] = value
        return self.settings(**overrides)

    def load(self, args: argparse.Namespace, prog: str) -> S | None:
        """``settings_from_args``, or None after saying on stderr why the settings are invalid."""
        try:
            return self.settings_from_args(args)
        except ValidationError as error:
            for line in self.explain(error):
                print(f"{prog}: {line}", file=sys.stderr)
            return None

    def explain(self, error: ValidationError) -> list[str]:
        """One line per invalid setting, naming its flag and variable (never pydantic's URL).

        The value is repeated so a typo is visible, except for secrets.
        """
        by_location = {(o.section, o.name): o for o in self.options()}
        lines = []
        for detail in error.errors(include_url=False):
            location = tuple(str(part) for part in detail["loc"])
            key = (location[0], location[1]) if len(location) >= 2 else (None, location[0])
            option = by_location.get(key) or by_location.get((None, location[0]))
            message = str(detail["msg"]).removeprefix("Value error, ")
            where = f"{option.flag} / {option.env}" if option else ".".join(location) or "settings"
            value = detail.get("input")
            secret = option is not None and "Secret" in repr(option.info.annotation)
            shown = (
                ""
                if secret or isinstance(value, dict) or detail["type"] == "missing"
                else (f" (got {value!r})")
            )
            if "got " in message:  # the validator already quoted the value
                shown = ""
            lines.append(f"invalid setting {where}: {message}{shown}")
        return lines


class CommandParser:
    """``prog COMMAND [options]``: every command takes every settings flag.

    The epilog is the CLI module's docstring after its first paragraph (its exit codes).
    """

    def __init__(
        self, prog: str, description: str, doc: str | None, options: SettingsCli[Any]
    ) -> None:
        self.parser = argparse.ArgumentParser(
            prog=prog,
            description=f"{description} Every option can also be set by its environment variable.",
            epilog=doc.split("\n\n", 1)[1] if doc else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.parser.add_argument(
            "--version", action="version", version=f"{prog} {dctlink_version()}"
        )
        self._commands = self.parser.add_subparsers(
            dest="command", required=True, metavar="COMMAND"
        )
        self._common = argparse.ArgumentParser(add_help=False)
        options.add_arguments(self._common)

    def command(self, name: str, help_text: str) -> argparse.ArgumentParser:
        return self._commands.add_parser(
            name, parents=[self._common], help=help_text, description=help_text
        )


def _section_model(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _add_argument(group: argparse._ArgumentGroup, option: Option) -> None:
    annotation = option.info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    env = option.env
    kwargs: dict[str, Any] = {"dest": option.dest, "default": argparse.SUPPRESS}
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(annotation) is list:
        kwargs["action"] = "append"
        kwargs["metavar"] = "KEY"
        env += ' (JSON list, e.g. \'["k1","k2"]\'); repeat the flag for several'
    else:
        kwargs["metavar"] = option.name.upper()
        if typing.get_origin(annotation) is Literal:
            kwargs["choices"] = [str(c) for c in typing.get_args(annotation)]
            # argparse hides choices behind a metavar; the usage line should list them.
            kwargs["metavar"] = "{" + ",".join(kwargs["choices"]) + "}"
    text = f"{option.info.description} [env {env}; default {default_text(option.info)}]"
    kwargs["help"] = text.replace("%", "%%")  # argparse formats help with %
    group.add_argument(option.flag, **kwargs)
