"""Operator log lines: kopf's chatter dropped, quiesce's kept, each carrying its object."""

from __future__ import annotations

import logging
import os

import kopf

from quiesce.operator import handlers, logs

KOPF_DIR = os.path.dirname(kopf.__file__) + os.sep


def record(pathname: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, pathname, 1, "line", None, None)


def test_kopfs_own_info_lines_are_dropped_and_its_warnings_and_ours_kept() -> None:
    chatter = logs._KopfChatter(KOPF_DIR)
    assert not chatter.filter(record(KOPF_DIR + "_core/actions/execution.py"))
    assert chatter.filter(record(KOPF_DIR + "_core/actions/execution.py", logging.WARNING))
    assert chatter.filter(record(handlers.__file__))


def test_lines_outside_kopfs_handlers_carry_the_object_as_kopfs_do() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}}  # fmt: skip
    adapter = handlers.object_logger(obj)
    assert adapter.extra == {
        "k8s_ref": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "u-1", "namespace": "shop"}
    }  # fmt: skip


def test_the_handlers_body_is_copied_through_the_public_mapping_api() -> None:
    raw = {"metadata": {"name": "web", "annotations": {"a": "b"}}, "spec": {"replicas": 1}}
    plain = handlers._plain(kopf.Body(raw))
    assert plain == raw and type(plain) is dict
    plain["metadata"]["annotations"]["a"] = "changed"
    assert raw["metadata"]["annotations"]["a"] == "b"
