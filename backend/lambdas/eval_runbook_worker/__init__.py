"""Posts runbook evaluation requests from SQS to the evaluation API."""
