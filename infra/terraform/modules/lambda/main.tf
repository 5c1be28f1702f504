locals {
  create_role    = var.create && var.create_role
  role_arn       = local.create_role ? try(aws_iam_role.this[0].arn, null) : var.role_arn
  log_group_name = "/aws/lambda/${var.name}"
  log_group_arn  = try(aws_cloudwatch_log_group.this[0].arn, null)

  # Lambda writes to the log group Terraform created; it needs no CreateLogGroup.
  log_statement = {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${coalesce(local.log_group_arn, "unknown")}:*"]
    condition = []
  }

  statements = concat([local.log_statement], var.policy_statements)

  policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = [
      for s in local.statements : merge(
        {
          Sid      = s.sid
          Effect   = "Allow"
          Action   = s.actions
          Resource = s.resources
        },
        length(s.condition) == 0 ? {} : {
          Condition = {
            for test in distinct([for c in s.condition : c.test]) : test => {
              for c in s.condition : c.variable => c.values if c.test == test
            }
          }
        },
      )
    ]
  })
}

resource "aws_cloudwatch_log_group" "this" {
  count = var.create ? 1 : 0

  name              = local.log_group_name
  retention_in_days = var.log_retention_days
}

resource "aws_iam_role" "this" {
  count = local.create_role ? 1 : 0

  name = var.name
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "LambdaAssume"
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "lambda.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy" "this" {
  count = local.create_role ? 1 : 0

  name   = "${var.name}-least-privilege"
  role   = aws_iam_role.this[0].id
  policy = local.policy_json
}

# Terraform owns the function's existence and configuration; the deploy tasks own
# its code, its layers, its published versions and where the `live` alias points.
resource "aws_lambda_function" "this" {
  count = var.create ? 1 : 0

  function_name = var.name
  description   = var.description
  role          = local.role_arn
  handler       = var.handler
  runtime       = var.runtime
  architectures = [var.architecture]
  layers        = var.layers
  memory_size   = var.memory_size
  timeout       = var.timeout

  # Only the first code; see bootstrap.tf in the root module.
  s3_bucket = var.s3_bucket
  s3_key    = var.s3_key

  # Publish version 1 on create so the alias has a real version to point at.
  publish = true

  dynamic "environment" {
    for_each = length(var.environment_variables) > 0 ? [1] : []
    content {
      variables = var.environment_variables
    }
  }

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]

  lifecycle {
    precondition {
      condition     = local.role_arn != null
      error_message = "Function ${var.name}: set create_role = true or pass role_arn."
    }

    ignore_changes = [
      s3_bucket,
      s3_key,
      s3_object_version,
      source_code_hash,
      filename,
      image_uri,
      layers,
      publish,
    ]
  }
}

resource "aws_lambda_alias" "live" {
  count = var.create ? 1 : 0

  name             = var.alias_name
  description      = "Traffic entry point; moved by the deploy tasks after each attach."
  function_name    = aws_lambda_function.this[0].function_name
  function_version = aws_lambda_function.this[0].version

  lifecycle {
    ignore_changes = [function_version, routing_config]
  }
}
