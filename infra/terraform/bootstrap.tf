# The first code the layer and the functions are created with, so that one apply on
# an empty account creates everything without a manual upload. It is only a
# placeholder: `inv deploy` uploads the real artifacts, publishes new layer versions
# and updates the functions, and every module ignores those changes.
#
# A constant, deterministic zip (fixed timestamps) generated once with Python's
# zipfile: a `python/` directory entry (a valid, empty layer) and
# `bootstrap_handler.py`, whose handler raises "run `inv deploy`".
# base64(sha256) = qVnpRy6+Yj/zV9cXbU8p+U3Ti0lg1hxGsWwI3hZ8X6Q=
locals {
  bootstrap_key = "${var.artifact_prefix}bootstrap.zip"
  bootstrap_zip_base64 = join("", [
    "UEsDBBQAAAAAAAAAIQAAAAAAAAAAAAAAAAAHAAAAcHl0aG9uL1BLAwQUAAAACAAAACEAM8a0L50AAADdAAAAFAAAAGJvb3RzdHJhcF9o",
    "YW5kbGVyLnB5Vc5BCsIwEAXQfU4xzKoF8QB17V7EA5gmUxJIZ8pkWu3tDRUE/+bv/n+IeCs+UJISSSFIJHiQqp9EZwhK3qiCJYJp5WBZ",
    "uMIrW7rAM/MGkZYi+xO0dVupkO2MiM65SBMkz7GQdrQR26mNs9Hb+sFBi/pcCe4rW57pqira4Shi1dQvB2QAXfn/xwSWdSy5psPUeOUH",
    "++LbJRS/k2LvPlBLAQIUAxQAAAAAAAAAIQAAAAAAAAAAAAAAAAAHAAAAAAAAAAAAEADtQQAAAABweXRob24vUEsBAhQDFAAAAAgAAAAh",
    "ADPGtC+dAAAA3QAAABQAAAAAAAAAAAAAAKSBJQAAAGJvb3RzdHJhcF9oYW5kbGVyLnB5UEsFBgAAAAACAAIAdwAAAPQAAAAAAA==",
  ])
}

resource "aws_s3_object" "bootstrap" {
  bucket         = aws_s3_bucket.artifacts.bucket
  key            = local.bootstrap_key
  content_base64 = local.bootstrap_zip_base64
  content_type   = "application/zip"

  # Versioning must be on before the first object, so it gets a version ID.
  depends_on = [aws_s3_bucket_versioning.artifacts]
}
