"""Recipient verification for inbound gateways: directories that know which mailboxes exist, and a cache.

Reads: a directory service (SmarterMail web services). Emits: `Verification` answers for RCPT TO.
"""
from mailgate.mail.directory.base import (DirectoryAnswerUnrecognised, DirectoryError, DirectoryLoginFailed,
                                          DirectoryUnavailable, UserDirectory)
from mailgate.mail.directory.cache import CachedDirectory, Verification
from mailgate.mail.directory.smartermail import SmarterMailDirectory
from mailgate.mail.directory.build import build_directories

__all__ = ["CachedDirectory", "DirectoryAnswerUnrecognised", "build_directories", "DirectoryError",
           "DirectoryLoginFailed", "DirectoryUnavailable",
           "SmarterMailDirectory", "UserDirectory", "Verification"]
