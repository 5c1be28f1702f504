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

  # Active tracing makes Lambda send segments with the execution role's credentials.
  # X-Ray has no resource-level permissions for these two actions: "*" is the only ARN.
  xray_statement = {
    sid       = "WriteTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
    condition = []
  }

  statements = concat([local.log_statement], var.tracing_mode == "Active" ? [local.xray_statement] : [], var.policy_statements)

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
  # checkov:skip=CKV_AWS_158: CloudWatch Logs already encrypts at rest; the handlers take credentials from env vars and do not log them, so a CMK per env would add a key policy and protect nothing more.
  # checkov:skip=CKV_AWS_338: function logs serve debugging, retained per env by log_retention_days (1/14/90 days) to bound cost; the audit trail is CloudTrail, not these groups.
  count = var.create ? 1 : 0

  name              = local.log_group_name
  retention_in_days = var.log_retention_days
}

resource "aws_iam_role" "this" {
  count = local.create_role ? 1 : 0

  name                 = var.name
  permissions_boundary = var.permissions_boundary
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
  # checkov:skip=CKV_AWS_117: this stack defines no VPC, subnet or private endpoint for the functions to reach; they call S3, EVAL_API_URL and DATABASE_URL over TLS, and a VPC would only add NAT cost.
  # checkov:skip=CKV_AWS_272: no signing profile; deploy/verify/deployed.py checks every deployed zip's sha256 against Lambda's CodeSha256 before the live alias moves, and artifacts are content-addressed.
  # checkov:skip=CKV_AWS_173: Lambda encrypts env vars at rest with the aws/lambda key; a CMK needs a KMS key and endpoint this stack (and its moto e2e) does not have. DATABASE_URL belongs in a secret store.
  # checkov:skip=CKV_AWS_116: this stack wires no async trigger: the API invokes cleanup with RequestResponse (the caller sees failures), and the SQS-fed worker's redrive belongs on its queue, not a Lambda DLQ.
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

  reserved_concurrent_executions = var.reserved_concurrent_executions

  tracing_config {
    mode = var.tracing_mode
  }

  # SnapStart snapshots each published version while it is Pending; the deploy waits for Active
  # before any alias moves (deploy/aws/readiness.py).
  dynamic "snap_start" {
    for_each = var.snap_start ? [1] : []
    content {
      apply_on = "PublishedVersions"
    }
  }

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
    # The tasks move the version and record the one it replaced in the description
    # ("previous=N"), which `inv rollback` goes back to.
    ignore_changes = [function_version, routing_config, description]
  }
}
