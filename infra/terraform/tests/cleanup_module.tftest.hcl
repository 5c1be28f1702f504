# Contract of modules/cleanup-lambda: layers pass through, the bucket and prefix reach
# the function, and its role reaches only that prefix.

mock_provider "aws" {
  # Plan-only runs: use the mocked ARNs below while planning, not only on apply.
  override_during = plan

  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/cleanup" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/cleanup" }
  }
}

variables {
  name                = "cleanup"
  runtime             = "python3.12"
  architecture        = "arm64"
  layers              = ["arn:aws:lambda:us-east-1:123456789012:layer:deps:4"]
  s3_bucket           = "bucket"
  s3_key              = "lambda/bootstrap.zip"
  cleanup_bucket_name = "bucket"
  cleanup_bucket_arn  = "arn:aws:s3:::bucket"
  cleanup_prefix      = "tmp/"
}

run "scoped_to_prefix" {
  command = plan

  module {
    source = "./modules/cleanup-lambda"
  }

  assert {
    condition     = output.layers == tolist(["arn:aws:lambda:us-east-1:123456789012:layer:deps:4"])
    error_message = "layers must pass through to the function."
  }
  assert {
    condition     = output.environment_variables["CLEANUP_BUCKET"] == "bucket" && output.environment_variables["CLEANUP_PREFIX"] == "tmp/"
    error_message = "CLEANUP_BUCKET and CLEANUP_PREFIX must be set."
  }
  assert {
    condition     = output.handler == "lambdas.cleanup.handler.handler"
    error_message = "The default handler is the cleanup handler."
  }
  assert {
    condition     = [for s in jsondecode(output.role_policy_json).Statement : s if s.Sid == "ReadAndDeleteCleanupPrefix"][0].Resource == ["arn:aws:s3:::bucket/tmp/*"]
    error_message = "Get/DeleteObject must be limited to the prefix."
  }
  assert {
    condition = [for s in jsondecode(output.role_policy_json).Statement : s if s.Sid == "ListCleanupPrefix"][0].Condition == {
      StringLike = { "s3:prefix" = ["tmp/*"] }
    }
    error_message = "ListBucket must be conditioned on the prefix."
  }
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(output.role_policy_json).Statement : [for a in s.Action : !strcontains(a, "*")]
    ]))
    error_message = "No wildcard actions."
  }
}

run "rejects_whole_bucket" {
  command = plan

  module {
    source = "./modules/cleanup-lambda"
  }

  variables {
    cleanup_prefix = "*"
  }

  expect_failures = [var.cleanup_prefix]
}
