"""Webhook certificates: generated with cryptography, checked, renewed from the same CA."""

from __future__ import annotations

import datetime
import ssl

from quiesce.operator import certificates

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)
HOSTS = ["198.18.0.1", "quiesce-webhook.quiesce-system.svc"]


def test_a_generated_bundle_is_valid_for_its_hosts_and_loads_into_ssl() -> None:
    bundle = certificates.generate(HOSTS, NOW)
    verdict = certificates.check(bundle, HOSTS, NOW)
    assert verdict.ok and verdict.ca_usable
    assert verdict.expires == NOW + certificates.CERT_VALIDITY
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(cadata=bundle.ca.decode())  # the caBundle parses


def test_renewal_is_due_with_a_third_of_the_lifetime_left_and_keeps_the_ca() -> None:
    bundle = certificates.generate(HOSTS, NOW, validity=datetime.timedelta(days=30))
    assert not certificates.check(bundle, HOSTS, NOW + datetime.timedelta(days=19)).renew
    later = NOW + datetime.timedelta(days=21)
    verdict = certificates.check(bundle, HOSTS, later)
    assert verdict.renew and not verdict.problems
    renewed = certificates.generate(HOSTS, later, previous=bundle)
    assert renewed.ca == bundle.ca and renewed.cert != bundle.cert
    assert certificates.check(renewed, HOSTS, later).ok


def test_an_expired_certificate_is_a_problem_named_with_its_date() -> None:
    bundle = certificates.generate(HOSTS, NOW, validity=datetime.timedelta(hours=1))
    verdict = certificates.check(bundle, HOSTS, NOW + datetime.timedelta(hours=2))
    assert verdict.renew
    assert any("expired at 2026-11-26 13:00:00 UTC" in p for p in verdict.problems)


def test_a_wrong_key_a_foreign_ca_and_a_missing_host_are_problems() -> None:
    a = certificates.generate(HOSTS, NOW)
    b = certificates.generate(HOSTS, NOW)
    mixed = certificates.Bundle(ca=a.ca, cert=b.cert, key=a.key, ca_key=a.ca_key)
    problems = certificates.check(mixed, [*HOSTS, "other.example"], NOW).problems
    assert any("does not belong" in p for p in problems)
    assert any("not signed by a CA" in p for p in problems)
    assert any("does not name other.example" in p for p in problems)
    garbage = certificates.Bundle(ca=b"x", cert=b"not a cert", key=b"x")
    assert certificates.check(garbage, HOSTS, NOW).problems


def test_a_new_ca_is_trusted_next_to_the_old_one_until_replicas_reload() -> None:
    old = certificates.generate(HOSTS, NOW)
    broken = certificates.Bundle(ca=old.ca, cert=old.cert, key=old.key, ca_key=b"lost")
    new = certificates.generate(HOSTS, NOW, previous=broken)
    assert new.ca != old.ca
    assert len(certificates.split_pem(new.ca)) == 2 and old.ca in new.ca
    assert certificates.check(new, HOSTS, NOW).ok
    assert not certificates.check(
        certificates.Bundle(ca=new.ca, cert=old.cert, key=old.key), HOSTS, NOW
    ).problems


def test_a_provided_secret_without_ca_key_is_read_as_is() -> None:
    generated = certificates.generate(HOSTS, NOW)
    data = {"tls.crt": generated.cert, "tls.key": generated.key, "ca.crt": generated.ca}
    bundle = certificates.Bundle.from_secret_data(data)
    assert bundle is not None and bundle.ca_key is None
    assert certificates.check(bundle, HOSTS, NOW).ok
    assert certificates.Bundle.from_secret_data({"tls.crt": b""}) is None
