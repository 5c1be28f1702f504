"""AWS operations: publish, attach, rollback, prune, status (boto3, waiters, retries)."""
