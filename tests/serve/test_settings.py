"""toolkit/serve/settings.py and the package's entry points: defaults, environment, factory."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

pytest.importorskip("fastapi", reason="toolkit serve needs the 'serve' extra")

from toolkit import defaults
from toolkit.serve import ServeSettings, create_app, create_app_from_env, serve
from toolkit.serve.server import APP_FACTORY
from toolkit.serve.settings import ENV_PREFIX


def test_defaults_come_from_toolkit_defaults():
    settings = ServeSettings("m.onnx")
    assert settings.providers == defaults.PROVIDERS
    assert settings.max_body_bytes == defaults.SERVE_MAX_BODY_BYTES == 8 << 20
    assert settings.max_rows == defaults.SERVE_MAX_ROWS == 100_000
    assert settings.body_timeout == defaults.SERVE_BODY_TIMEOUT == 30.0
    assert settings.header_timeout == defaults.SERVE_HEADER_TIMEOUT == 10.0
    assert settings.max_concurrency == defaults.SERVE_MAX_CONCURRENCY == 1000


def test_settings_round_trip_through_the_environment(monkeypatch):
    settings = ServeSettings("m.onnx", "cpu", 4096, 10, 1.5, 2.5, 7)
    env = settings.to_env()
    assert env == {
        "TOOLKIT_SERVE_MODEL": "m.onnx",
        "TOOLKIT_SERVE_PROVIDERS": "cpu",
        "TOOLKIT_SERVE_MAX_BODY_BYTES": "4096",
        "TOOLKIT_SERVE_MAX_ROWS": "10",
        "TOOLKIT_SERVE_BODY_TIMEOUT": "1.5",
        "TOOLKIT_SERVE_HEADER_TIMEOUT": "2.5",
        "TOOLKIT_SERVE_MAX_CONCURRENCY": "7",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert ServeSettings.from_env() == settings


def test_missing_variables_fall_back_to_the_defaults(monkeypatch):
    for field in dataclasses.fields(ServeSettings):
        monkeypatch.delenv(ENV_PREFIX + field.name.upper(), raising=False)
    monkeypatch.setenv(ENV_PREFIX + "MODEL", "m.onnx")
    assert ServeSettings.from_env() == ServeSettings("m.onnx")


def test_the_factory_string_uvicorn_workers_import_names_create_app_from_env():
    module, name = APP_FACTORY.split(":")
    assert module == "toolkit.serve"
    assert getattr(importlib.import_module(module), name) is create_app_from_env
    assert callable(create_app) and callable(serve)
