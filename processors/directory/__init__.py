"""Recipient verification for inbound gateways: directories that know which mailboxes exist, and a cache.

Reads: a directory service (SmarterMail web services). Emits: `Verification` answers for RCPT TO.
"""
from processors.directory.base import DirectoryError, DirectoryLoginFailed, DirectoryUnavailable, UserDirectory
from processors.directory.cache import CachedDirectory, Verification
from processors.directory.smartermail import SmarterMailDirectory

__all__ = ["CachedDirectory", "DirectoryError", "DirectoryLoginFailed", "DirectoryUnavailable",
           "SmarterMailDirectory", "UserDirectory", "Verification"]
