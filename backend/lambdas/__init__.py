"""Background Lambda functions; each subpackage's `handler.handler` is one function's entry point."""
