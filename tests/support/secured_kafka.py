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
    """ca.pem, broker-cert.pem, broker-key.pem in `directory` (the key unencrypted, as trustme writes it)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": directory / "ca.pem", "cert": directory / "broker-cert.pem", "key": directory / "broker-key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    with open(paths["cert"], "wb") as f:
        for pem in leaf.cert_chain_pems:
            f.write(pem.bytes())
    return paths


def secured_settings(certs: dict[str, Path]) -> dict:
    """Config overrides: clients on SASL_SSL / SCRAM-SHA-512, and the local broker serving exactly that."""
    return {
        "kafka": {"security": {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": USER,
                               "sasl_password": {"env": PASSWORD_ENV}, "ca_file": str(certs["ca"])}},
        "local_broker": {"sasl_ssl": {"cert_file": str(certs["cert"]), "key_file": str(certs["key"])}},
    }


def password_env(password: str = KAFKA_SASL_PASSWORD) -> dict[str, str]:
    return {PASSWORD_ENV: password}
