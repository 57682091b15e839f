"""processors: faust-streaming agents whose steps are small policies — event in, events out. Authoritative and
replayable: verification, spam classification and routing of every accepted message."""
