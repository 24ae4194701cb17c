"""Finding the backends: this package's modules that declare ``PREFIXES``, then the entry-point
group ``llm_judge.backends`` (plugins, llm-judge's own ``fake:`` among them), and the options they
declare (for the config file's keys). Nothing is loaded or resolved here, and no configuration read.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from pydantic import ConfigDict, TypeAdapter, ValidationError

from .base import Options

ENTRY_POINTS = "llm_judge.backends"
_registry: dict[str, ModuleType] = {}


def registry() -> dict[str, ModuleType]:
    """prefix -> backend module: this package's modules, then the entry-point group's."""
    if not _registry:
        here = [f"{__package__}.{m.name}" for m in pkgutil.iter_modules([str(Path(__file__).parent)])]
        plugins = [ep.value.split(":")[0] for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)]
        for module in map(importlib.import_module, here + plugins):
            for prefix in getattr(module, "PREFIXES", ()):
                _registry.setdefault(prefix, module)
    return _registry


def options_of(module: ModuleType) -> type[Options]:
    """The ``Options`` a backend module declares (the base one where it declares none)."""
    declared = getattr(module, "Options", Options)
    return declared if isinstance(declared, type) and issubclass(declared, Options) else Options


def option_types() -> dict[str, Callable[[object], bool]]:
    """Every option some backend takes -> whether a value is of a type one of them takes for it."""
    adapters: dict[str, list[TypeAdapter[object]]] = {}
    for module in set(registry().values()):
        model = options_of(module)
        for name in model.taken():
            annotation = model.model_fields[name].annotation
            adapters.setdefault(name, []).append(TypeAdapter(annotation, config=ConfigDict(strict=True)))
    return {name: _accepts(found) for name, found in adapters.items()}


def _accepts(adapters: list[TypeAdapter[object]]) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        for adapter in adapters:
            try:
                adapter.validate_python(value)
                return True
            except ValidationError:
                continue
        return False

    return check
