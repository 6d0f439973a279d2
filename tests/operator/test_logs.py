"""Operator log lines: each about one object carries it, as kopf's per-object lines do."""

from __future__ import annotations

import json
import logging

import pytest

from quiesce.operator import logs

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}}  # fmt: skip


def test_lines_about_an_object_carry_it_in_kopfs_json(
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers_before, level_before = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("kopf.objects", "urllib3")}
    try:
        logs.configure("json")
        logs.object_logger(DEPLOYMENT).info("Injected shop/web: quiesce.dev/inject is set.")
    finally:
        root.handlers[:], root.level = handlers_before, level_before
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    (line,) = [json.loads(x) for x in capfd.readouterr().err.splitlines() if "Injected" in x]
    assert line["message"] == "Injected shop/web: quiesce.dev/inject is set."
    assert line["object"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                              "uid": "u-1", "namespace": "shop"}  # fmt: skip
