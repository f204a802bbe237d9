"""Primitives: passwords, tokens, signing keys, TOTP, secret boxes, digests, API key format,
budgets and the audit row writer. No imports from features, no commits, no request objects."""
