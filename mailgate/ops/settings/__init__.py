"""The configuration as an operator changes it: `mailgate config|gateway|auth|dkim`, `config check`, and the live
settings (AUTH users, DKIM keys) written as audited events to `mail.config`."""
