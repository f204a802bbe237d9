"""What every request stands on: settings, the database engine and session, extensions, the
clock, logs, request hooks and headers, the error envelope, metrics and the OpenAPI document.
Imports nothing else of authapp (docs/architecture.md "Layers")."""
