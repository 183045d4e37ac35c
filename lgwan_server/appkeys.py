"""Every typed application and request key, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    # Named only in the string type arguments below, which ruff does not count as uses.
    from .bridge.dialler import Dialler  # noqa: F401
    from .config import LgwanConfig  # noqa: F401
    from .hub import Hub  # noqa: F401
    from .kernel import Kernel  # noqa: F401
    from .services.auth import Authenticated  # noqa: F401
    from .storage.database import Database  # noqa: F401
    from .web.validation import Validator  # noqa: F401

config_key = web.AppKey["LgwanConfig"]("config")
db_key = web.AppKey["Database"]("db")
hub_key = web.AppKey["Hub"]("hub")
kernel_key = web.AppKey["Kernel"]("kernel")
validator_key = web.AppKey["Validator"]("validator")
dialler_key = web.AppKey["Dialler"]("dialler")     # only when [bridge] enabled (issue 5)

current_auth_key = web.RequestKey["Authenticated"]("current_auth")
client_ip_key = web.RequestKey[str]("client_ip")
