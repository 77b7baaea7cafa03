"""Typed keys for what the console keeps on its application and on each request."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from webrana_dashboard.client import ApiClient
from webrana_dashboard.credentials import BrowserCredentials, Refresher
from webrana_dashboard.i18n import Translator
from webrana_dashboard.session import Session, SessionStore
from webrana_dashboard.settings import DashboardSettings
from webrana_dashboard.shared import SharedAnswers

SETTINGS = web.AppKey("settings", DashboardSettings)
HTTP = web.AppKey("http", aiohttp.ClientSession)
API = web.AppKey("api", ApiClient)
REFRESHER = web.AppKey("refresher", Refresher)
CATALOGUES = web.AppKey("catalogues", dict[str, dict[str, str]])
SESSIONS = web.AppKey("sessions", SessionStore)
STATIC_VERSION = web.AppKey("static_version", str)
SHARED = web.AppKey("shared", SharedAnswers)  # the plans and /api/meta, kept for a while

SESSION = web.RequestKey("session", Session)
TRANSLATOR = web.RequestKey("translator", Translator)
CREDENTIALS = web.RequestKey("credentials", BrowserCredentials)
USES_SNAP = web.RequestKey("uses_snap", bool)  # this page loads Midtrans' snap.js: the CSP must allow its host
