"""Ed25519 identity (private key only via keyring or an encrypted key file) and DSSE envelopes."""
