"""Code every gazeflow stage shares: messages, transport, config, metrics, inference."""
