"""BlueMoxon HTTP API, served on Lambda through Mangum; `app.db` holds the schema the workers share."""
