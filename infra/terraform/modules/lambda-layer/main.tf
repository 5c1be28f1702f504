# Terraform creates the first version of the layer; `inv publish-layer` publishes every
# later one. Layer versions are immutable and every argument below forces a new
# version, so everything the tasks own is ignored here: otherwise a plan after a
# deploy would want to replace the version Terraform created.
resource "aws_lambda_layer_version" "this" {
  count = var.create ? 1 : 0

  layer_name               = var.layer_name
  description              = var.description
  compatible_runtimes      = var.compatible_runtimes
  compatible_architectures = var.compatible_architectures
  license_info             = var.license_info

  s3_bucket = var.s3_bucket
  s3_key    = var.s3_key

  # Keep the old version when Terraform replaces it: functions may still use it,
  # and deleting a version in use is exactly what pruning must never do.
  skip_destroy = true

  lifecycle {
    ignore_changes = [
      s3_bucket,
      s3_key,
      s3_object_version,
      filename,
      source_code_hash,
      description,
      license_info,
      compatible_runtimes,
      compatible_architectures,
    ]
  }
}
