"""ingress: SMTP listeners. Decides at the protocol level and publishes accepted mail as MessageReceived. Never
delivers."""
