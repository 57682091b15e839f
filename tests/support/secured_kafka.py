"""A secured local broker for scenario tests: certificates from a throwaway CA and the config that uses them.

Makes a CA and a broker certificate for 127.0.0.1 with `trustme` (PEM files in the test's directory), and the
`kafka.security` + `local_broker.sasl_ssl` settings under which every mailgate client logs in over SASL_SSL with
SCRAM-SHA-512. The password is given by reference (`{env: MAILGATE_KAFKA_PASSWORD}`), as in production.
"""
from __future__ import annotations

from pathlib import Path

import trustme

from tests.support.secrets import KAFKA_SASL_PASSWORD

PASSWORD_ENV = "MAILGATE_KAFKA_PASSWORD"
USER = "mailgate"


def make_certs(directory: Path) -> dict[str, Path]:
    """ca.pem, broker-{cert,key}.pem (for 127.0.0.1) and client-{cert,key}.pem in `directory`, one CA for all."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    paths = {"ca": directory / "ca.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    for who, leaf in (("broker", ca.issue_cert("127.0.0.1", "localhost")), ("client", ca.issue_cert("mailgate.test"))):
        paths[f"{who}_cert"], paths[f"{who}_key"] = directory / f"{who}-cert.pem", directory / f"{who}-key.pem"
        leaf.private_key_pem.write_to_path(str(paths[f"{who}_key"]))
        with open(paths[f"{who}_cert"], "wb") as f:
            for pem in leaf.cert_chain_pems:
                f.write(pem.bytes())
    return paths


def secured_settings(certs: dict[str, Path], client_cert: bool = False) -> dict:
    """Config overrides: clients on SASL_SSL / SCRAM-SHA-512, and the local broker serving exactly that; with
    `client_cert`, the broker also requires a client certificate and the clients offer theirs."""
    security = {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": USER,
                "sasl_password": {"env": PASSWORD_ENV}, "ca_file": str(certs["ca"])}
    if client_cert:
        security.update(cert_file=str(certs["client_cert"]), key_file=str(certs["client_key"]))
    return {"kafka": {"security": security},
            "local_broker": {"sasl_ssl": {"cert_file": str(certs["broker_cert"]), "key_file": str(certs["broker_key"]),
                                          "require_client_cert": client_cert}}}


def password_env(password: str = KAFKA_SASL_PASSWORD) -> dict[str, str]:
    return {PASSWORD_ENV: password}
