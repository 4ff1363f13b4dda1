"""The live runtime: the same actors in OS processes over ZeroMQ, in wall-clock time.

The package is also the API function: ``simnet.live(scenario, …)`` is
:func:`simnet.api.live` (importing this package makes ``simnet.live`` the package, so
the package itself is made callable rather than the function shadowed).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from simnet.api import live

        return live(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
