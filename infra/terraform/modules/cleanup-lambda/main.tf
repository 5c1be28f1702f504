# The cleanup function deletes stale objects under one prefix of one bucket, so its
# role may list, read and delete there and nowhere else.
module "function" {
  source = "../lambda"

  create             = var.create
  name               = var.name
  description        = var.description
  handler            = var.handler
  runtime            = var.runtime
  architecture       = var.architecture
  layers             = var.layers
  s3_bucket          = var.s3_bucket
  s3_key             = var.s3_key
  memory_size        = var.memory_size
  timeout            = var.timeout
  log_retention_days = var.log_retention_days

  permissions_boundary           = var.permissions_boundary
  reserved_concurrent_executions = var.reserved_concurrent_executions
  tracing_mode                   = var.tracing_mode
  snap_start                     = var.snap_start

  environment_variables = merge(var.environment_variables, {
    CLEANUP_BUCKET = var.cleanup_bucket_name
    CLEANUP_PREFIX = var.cleanup_prefix
  })

  policy_statements = concat(var.policy_statements, [
    {
      sid       = "ListCleanupPrefix"
      actions   = ["s3:ListBucket"]
      resources = [var.cleanup_bucket_arn]
      condition = [{
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${var.cleanup_prefix}*"]
      }]
    },
    {
      sid       = "ReadAndDeleteCleanupPrefix"
      actions   = ["s3:GetObject", "s3:DeleteObject"]
      resources = ["${var.cleanup_bucket_arn}/${var.cleanup_prefix}*"]
    },
  ])
}
