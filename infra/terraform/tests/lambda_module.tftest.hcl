# Contract of modules/lambda: layers pass through, the deploy tasks' changes are
# ignored, and the execution role never gets a wildcard action.

mock_provider "aws" {
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/fn" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/fn" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn     = "arn:aws:lambda:us-east-1:123456789012:function:fn"
      version = "1"
    }
  }
}

variables {
  name         = "fn"
  handler      = "app.main.handler"
  runtime      = "python3.12"
  architecture = "x86_64"
  layers       = ["arn:aws:lambda:us-east-1:123456789012:layer:deps:1"]
  s3_bucket    = "bucket"
  s3_key       = "lambda/bootstrap.zip"
  environment_variables = {
    CLEANUP_FUNCTION_NAME = "cleanup"
  }
}

run "creates_function_alias_role_and_log_group" {
  command = apply

  module {
    source = "./modules/lambda"
  }

  assert {
    condition     = aws_lambda_function.this[0].layers == tolist(["arn:aws:lambda:us-east-1:123456789012:layer:deps:1"])
    error_message = "The layers variable must reach the function."
  }
  assert {
    condition     = aws_lambda_function.this[0].publish && aws_lambda_alias.live[0].function_version == "1"
    error_message = "The function must publish version 1 and the live alias must point at it."
  }
  assert {
    condition     = aws_lambda_alias.live[0].name == "live"
    error_message = "The alias must be called live."
  }
  assert {
    condition     = aws_cloudwatch_log_group.this[0].name == "/aws/lambda/fn"
    error_message = "The log group must be /aws/lambda/<name>."
  }
  assert {
    condition     = aws_lambda_function.this[0].architectures == tolist(["x86_64"]) && aws_lambda_function.this[0].handler == "app.main.handler"
    error_message = "Architecture and handler must come from the variables."
  }
  assert {
    condition     = aws_lambda_function.this[0].environment[0].variables["CLEANUP_FUNCTION_NAME"] == "cleanup"
    error_message = "Environment variables must reach the function."
  }
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_role_policy.this[0].policy).Statement : [for a in s.Action : !strcontains(a, "*")]
    ]))
    error_message = "The execution role must not allow wildcard actions."
  }
  assert {
    condition = jsondecode(aws_iam_role_policy.this[0].policy).Statement[0].Resource == [
      "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/fn:*"
    ]
    error_message = "The role may write only to its own log group."
  }
  assert {
    condition     = aws_lambda_function.this[0].tracing_config[0].mode == "Active"
    error_message = "Functions trace with X-Ray (Active) by default."
  }
  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.this[0].policy).Statement : s if s.Sid == "WriteTraces"][0].Action == [
      "xray:PutTraceSegments", "xray:PutTelemetryRecords",
    ]
    error_message = "Active tracing needs the role to send segments: without it Lambda refuses the configuration."
  }
  assert {
    condition     = aws_lambda_function.this[0].reserved_concurrent_executions == -1
    error_message = "No concurrency is reserved unless asked for."
  }
}

# What `inv deploy` changes (code, layers, alias version) must not be planned back:
# with ignore_changes the planned value stays the one in state.
run "deploy_task_changes_are_not_drift" {
  command = plan

  module {
    source = "./modules/lambda"
  }

  variables {
    layers    = ["arn:aws:lambda:us-east-1:123456789012:layer:deps:7"]
    s3_bucket = "other-bucket"
    s3_key    = "lambda/code-abc.zip"
  }

  assert {
    condition     = aws_lambda_function.this[0].layers == tolist(["arn:aws:lambda:us-east-1:123456789012:layer:deps:1"])
    error_message = "layers must be in ignore_changes: the deploy tasks own them."
  }
  assert {
    condition     = aws_lambda_function.this[0].s3_key == "lambda/bootstrap.zip" && aws_lambda_function.this[0].s3_bucket == "bucket"
    error_message = "s3_bucket/s3_key must be in ignore_changes: the deploy tasks own the code."
  }
}

run "rejects_wildcard_actions" {
  command = plan

  module {
    source = "./modules/lambda"
  }

  variables {
    policy_statements = [{
      sid       = "TooBroad"
      actions   = ["s3:*"]
      resources = ["arn:aws:s3:::bucket"]
    }]
  }

  expect_failures = [var.policy_statements]
}

run "rejects_unknown_architecture" {
  command = plan

  module {
    source = "./modules/lambda"
  }

  variables {
    architecture = "sparc"
  }

  expect_failures = [var.architecture]
}

run "pass_through_tracing_and_reserved_concurrency" {
  command = plan

  module {
    source = "./modules/lambda"
  }

  variables {
    tracing_mode                   = "PassThrough"
    reserved_concurrent_executions = 1
  }

  assert {
    condition     = aws_lambda_function.this[0].tracing_config[0].mode == "PassThrough" && aws_lambda_function.this[0].reserved_concurrent_executions == 1
    error_message = "tracing_mode and reserved_concurrent_executions must reach the function."
  }
  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.this[0].policy).Statement : s if s.Sid == "WriteTraces"]) == 0
    error_message = "Without Active tracing the role gets no X-Ray permission."
  }
}

run "snap_start_on_published_versions_only_when_asked" {
  command = plan

  module {
    source = "./modules/lambda"
  }

  assert {
    condition     = length(aws_lambda_function.this[0].snap_start) == 0
    error_message = "SnapStart is off unless invoke.yaml's snap_start turns it on."
  }
}

run "snap_start_applies_on_published_versions" {
  command = plan

  module {
    source = "./modules/lambda"
  }

  variables {
    snap_start = true
  }

  assert {
    condition     = aws_lambda_function.this[0].snap_start[0].apply_on == "PublishedVersions"
    error_message = "snap_start = true must set SnapStart on published versions (the deploy publishes every version it serves)."
  }
}

run "rejects_bad_tracing_and_concurrency" {
  command = plan

  module {
    source = "./modules/lambda"
  }

  variables {
    tracing_mode                   = "Off"
    reserved_concurrent_executions = -2
  }

  expect_failures = [var.tracing_mode, var.reserved_concurrent_executions]
}
