"""Copies rows into DATABASE_URL from another database or an S3 JSON export."""
