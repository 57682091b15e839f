"""The scan step of the processor pipeline: `policy.VirusPolicy` scans with clamd and the attachment rules
(mailgate/mail/antivirus) and applies the gateway's virus actions."""
