"""Every typed application and request key of the relay, in one place."""

from __future__ import annotations

from aiohttp import web

from .config import RelayConfig
from .kernel import Relay
from .services.accounts import Authenticated

config_key = web.AppKey[RelayConfig]("config")
relay_key = web.AppKey[Relay]("relay")
web_app_key = web.AppKey[web.Application]("web_app")     # the queue app reaches the shared kernel through it

current_auth_key = web.RequestKey[Authenticated]("current_auth")
client_ip_key = web.RequestKey[str]("client_ip")
