"""The kopf controller: handlers (thin), status derivation and progress (pure), settings."""
