"""The event contract between mailgate's stages: one Avro schema per event (`*.avsc` here) and one codec.

Stage code imports the record classes from here and never builds dicts by hand:
`from schemas import MessageReceived, encode, decode`.
"""
from schemas.codec import REGISTRY, UndecodableRecord, UnknownSchemaVersion, decode, encode, event_name, to_json_dict  # noqa: F401 (in __all__)

_c = REGISTRY.classes
MessageReceived = _c["MessageReceived"]
TempfailedMessageStored = _c["TempfailedMessageStored"]
RecipientRejected = _c["RecipientRejected"]
ConnectionRefused = _c["ConnectionRefused"]
RecipientVerified = _c["RecipientVerified"]
MessageRouted = _c["MessageRouted"]
DsnRecipient = _c["DsnRecipient"]
Route = _c["Route"]
DeliveryAttempted = _c["DeliveryAttempted"]
RecipientResult = _c["RecipientResult"]
SmtpReply = _c["SmtpReply"]
MessageDelivered = _c["MessageDelivered"]
DeliveryDeferred = _c["DeliveryDeferred"]
MessageBounced = _c["MessageBounced"]
MessageExpired = _c["MessageExpired"]
DuplicateSuppressed = _c["DuplicateSuppressed"]
MessageClassified = _c["MessageClassified"]
MessageScanned = _c["MessageScanned"]
AttachmentFinding = _c["AttachmentFinding"]
ScorerScore = _c["ScorerScore"]
MessageQuarantined = _c["MessageQuarantined"]
MessageDiscarded = _c["MessageDiscarded"]
QuarantineReleased = _c["QuarantineReleased"]
DeadLettered = _c["DeadLettered"]
GatewayConfigured = _c["GatewayConfigured"]
GatewayRemoved = _c["GatewayRemoved"]
ReplayRequested = _c["ReplayRequested"]
CachePurgeRequested = _c["CachePurgeRequested"]
SettingsConfigured = _c["SettingsConfigured"]
SenderAuthenticated = _c["SenderAuthenticated"]
DkimSignatureResult = _c["DkimSignatureResult"]
QueueCommandIssued = _c["QueueCommandIssued"]
QueueCommandApplied = _c["QueueCommandApplied"]
DestinationSuspended = _c["DestinationSuspended"]
DestinationResumed = _c["DestinationResumed"]
MessageParked = _c["MessageParked"]

TERMINAL_EVENTS = frozenset({"MessageDelivered", "MessageBounced", "MessageExpired", "MessageDiscarded"})
"""Events after which nothing more happens to the recipients they name."""

__all__ = [n for n in dir() if n[0].isupper()] + ["UndecodableRecord", "decode", "encode", "event_name",
                                                  "to_json_dict"]
