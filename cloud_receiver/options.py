"""``serve`` flags generated from the settings model, so help and env names never drift.

Each setting becomes ``--<section>-<name>`` (``--broker-shared-group``); its help shows the
description, the environment variable and the default. Flags left out do not override the
environment: argparse's SUPPRESS keeps them out of the namespace entirely.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from cloud_receiver.config import ENV_PREFIX, ReceiverSettings

# Short spellings for the flags people type most.
ALIASES = {
    ("broker", "url"): "--broker",
    ("store", "data_dir"): "--data-dir",
    ("api", "host"): "--host",
    ("api", "port"): "--port",
}


def _flag(section: str | None, name: str) -> str:
    if section is not None and (section, name) in ALIASES:
        return ALIASES[(section, name)]
    return "--" + "-".join(p for p in (section, name) if p).replace("_", "-")


def _default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "none"
    return "none" if info.default is None else str(info.default)


def _add(group: argparse._ArgumentGroup, section: str | None, name: str, info: FieldInfo) -> None:
    env = ENV_PREFIX + "__".join(p for p in (section, name) if p).upper()
    dest = f"setting:{section or ''}:{name}"
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS}
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(annotation) is list:
        kwargs["action"] = "append"
        kwargs["metavar"] = "KEY"
        env += ' (JSON list, e.g. \'["k1","k2"]\'); repeat the flag for several'
    else:
        kwargs["metavar"] = name.upper()
        if typing.get_origin(annotation) is Literal:
            kwargs["choices"] = [str(c) for c in typing.get_args(annotation)]
    kwargs["help"] = f"{info.description} [env {env}; default {_default_text(info)}]"
    group.add_argument(_flag(section, name), **kwargs)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    top = parser.add_argument_group("general")
    for name, info in ReceiverSettings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            group = parser.add_argument_group(name, info.description)
            for sub_name, sub_info in annotation.model_fields.items():
                _add(group, name, sub_name, sub_info)
        else:
            _add(top, None, name, info)


def settings_from_args(args: argparse.Namespace) -> ReceiverSettings:
    """Environment first, then the flags given on the command line on top.

    A flag replaces its whole setting but not its section: the environment's other options
    in that section still apply, because pydantic-settings merges nested values.
    """
    overrides: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if not dest.startswith("setting:"):
            continue
        _, section, name = dest.split(":")
        if section:
            overrides.setdefault(section, {})[name] = value
        else:
            overrides[name] = value
    return ReceiverSettings(**overrides)
