"""Plug-ins: the user's own classes and functions named in a scenario as ``module:Name``.

``module`` is imported from ``sys.path`` (``PYTHONPATH``, the working directory of
``python -m``); a module path ending in ``.py`` is a file, relative to the scenario
(``./mystrategy.py:Median``). A bad reference is an :class:`InputError` naming the field
and the value; an exception raised by the user's code is a :class:`PluginError` carrying
the user's traceback.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from simnet.config.origin import Origin
from simnet.errors import InputError, PluginError

T = TypeVar("T")


def is_reference(value: str) -> bool:
    """Whether ``value`` names a plug-in (has a ``:``) rather than a built-in."""
    return ":" in value


@dataclass(frozen=True)
class PluginRef:
    """``module:name`` with a file module resolved to an absolute path; picklable, so a
    worker process can load the same object."""

    module: str
    name: str

    @property
    def text(self) -> str:
        return f"{self.module}:{self.name}"

    def load(self) -> Any:
        """The named object (``ImportError`` / ``AttributeError`` if it is not there)."""
        return getattr(_module(self.module), self.name)


def _module(module: str) -> ModuleType:
    if not module.endswith(".py"):
        return importlib.import_module(module)
    digest = hashlib.sha1(module.encode()).hexdigest()[:12]
    key = f"simnet_plugin_{Path(module).stem}_{digest}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, module)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {module}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[key] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[key]
            raise
    return sys.modules[key]


def resolve(value: str, origin: Origin, field: str) -> PluginRef:
    """The reference ``value`` of scenario field ``field``, checked to import."""
    module, _, name = value.rpartition(":")
    if not module or not name:
        raise InputError(origin.source, field, f"expected module:Name, got {value!r}")
    if module.endswith(".py"):
        path = origin.resolve(module)
        if not path.is_file():
            raise InputError(origin.source, field, f"{value!r}: file not found: {path}")
        module = str(path)
    ref = PluginRef(module, name)
    try:
        found = guarded(field, value, _module, module)
    except ImportError as exc:
        raise InputError(origin.source, field, f"{value!r}: cannot import: {exc}") from None
    if not hasattr(found, name):
        raise InputError(origin.source, field, f"{value!r}: {module} has no {name}")
    return ref


def load_class(value: str, origin: Origin, field: str, base: type[T]) -> tuple[PluginRef, type[T]]:
    """The class ``value`` names, which must subclass ``base``."""
    ref = resolve(value, origin, field)
    found = ref.load()
    if not (isinstance(found, type) and issubclass(found, base)):
        wanted = f"{base.__module__}.{base.__qualname__}"
        raise InputError(origin.source, field, f"{value!r} is not a subclass of {wanted}")
    return ref, found


def guarded(field: str, ref: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, user code: an exception it raises (other than an import
    failure) becomes a :class:`PluginError` naming ``field`` and ``ref`` with the
    traceback from the user's frames on."""
    try:
        return fn(*args, **kwargs)
    except (ImportError, InputError, PluginError):
        raise
    except Exception as exc:
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
        error = f"{type(exc).__name__}: {exc}"
        raise PluginError(field, ref, error, "".join(frames)) from exc
