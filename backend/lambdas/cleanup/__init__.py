"""Deletes expired sessions and S3 objects no upload row references."""
