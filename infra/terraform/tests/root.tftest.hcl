# The root module: names derived from the environment, the deploy_targets contract the
# Python tasks parse, least-privilege roles, and the workspace guard.
#
# `terraform test` always runs in the "default" workspace, and the guard requires
# workspace == environment, so these runs use environment = "default".

mock_provider "aws" {
  # Plan-only runs: use the mocked ARNs below while planning, not only on apply.
  override_during = plan

  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/mock" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::bluemoxon-frontend-default" }
  }
  mock_resource "aws_lambda_layer_version" {
    defaults = {
      arn       = "arn:aws:lambda:us-east-1:123456789012:layer:bluemoxon-default-deps:1"
      layer_arn = "arn:aws:lambda:us-east-1:123456789012:layer:bluemoxon-default-deps"
    }
  }
  mock_resource "aws_lambda_alias" {
    defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-cleanup:live" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bluemoxon-default/database-url-AbCdEf" }
  }
}

variables {
  environment = "default"
}

run "deploy_targets_contract" {
  command = plan

  assert {
    condition = output.deploy_targets == {
      env          = "default"
      region       = "us-east-1"
      bucket       = "bluemoxon-frontend-default"
      layer_name   = "bluemoxon-default-deps"
      runtime      = "python3.12"
      architecture = "x86_64"
      alias        = "live"
      functions = {
        api                 = { name = "bluemoxon-default-api", handler = "app.main.handler", runtime = "python3.12", architectures = tolist(["x86_64"]), region = "us-east-1", sources = tolist(["app"]) }
        cleanup             = { name = "bluemoxon-default-cleanup", handler = "lambdas.cleanup.handler.handler", runtime = "python3.12", architectures = tolist(["x86_64"]), region = "us-east-1", sources = tolist(["app", "lambdas/__init__.py", "lambdas/cleanup"]) }
        db_sync             = { name = "bluemoxon-default-db-sync", handler = "lambdas.db_sync.handler.handler", runtime = "python3.12", architectures = tolist(["x86_64"]), region = "us-east-1", sources = tolist(["app", "lambdas/__init__.py", "lambdas/db_sync"]) }
        eval_runbook_worker = { name = "bluemoxon-default-eval-runbook-worker", handler = "lambdas.eval_runbook_worker.handler.handler", runtime = "python3.12", architectures = tolist(["x86_64"]), region = "us-east-1", sources = tolist(["lambdas/__init__.py", "lambdas/eval_runbook_worker"]) }
      }
    }
    error_message = "deploy_targets must match the contract deploy/terraform/targets.py parses."
  }
  assert {
    condition     = aws_s3_object.bootstrap.key == "lambda/bootstrap.zip" && aws_s3_object.bootstrap.bucket == "bluemoxon-frontend-default"
    error_message = "The bootstrap artifact lives at lambda/bootstrap.zip in the artifact bucket."
  }
  assert {
    condition     = module.function["api"].layers == tolist(["arn:aws:lambda:us-east-1:123456789012:layer:bluemoxon-default-deps:1"]) && module.cleanup["cleanup"].layers == module.function["api"].layers
    error_message = "The functions must be created with the shared layer."
  }
  assert {
    condition     = module.function["api"].environment_variables["CLEANUP_FUNCTION_NAME"] == module.cleanup["cleanup"].alias_arn
    error_message = "The API must invoke the cleanup function's live alias, from the module."
  }
  assert {
    condition = [for s in jsondecode(module.function["api"].role_policy_json).Statement : s.Resource if s.Sid == "InvokeFunctions"][0] == [
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-cleanup",
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-cleanup:*",
    ]
    error_message = "The API may invoke only the cleanup function (and its versions/alias)."
  }
  assert {
    condition = alltrue(flatten([
      for policy in [module.function["api"].role_policy_json, module.cleanup["cleanup"].role_policy_json, module.function["db_sync"].role_policy_json, module.function["eval_runbook_worker"].role_policy_json] : [
        for s in jsondecode(policy).Statement : [for a in s.Action : !strcontains(a, "*")]
      ]
    ]))
    error_message = "No execution role may allow a wildcard action."
  }
  assert {
    condition = length(flatten([
      for policy in [module.cleanup["cleanup"].role_policy_json, module.function["db_sync"].role_policy_json, module.function["eval_runbook_worker"].role_policy_json] : [
        for s in jsondecode(policy).Statement : s if contains(s.Action, "lambda:InvokeFunction")
      ]
    ])) == 0
    error_message = "Only the API role may invoke functions."
  }
  assert {
    condition     = output.github_deploy_role_arn == null && length(module.github_oidc) == 0
    error_message = "The CI deploy role is off without github_repository."
  }
  assert {
    condition = {
      api                 = module.function["api"].reserved_concurrent_executions
      cleanup             = module.cleanup["cleanup"].reserved_concurrent_executions
      db_sync             = module.function["db_sync"].reserved_concurrent_executions
      eval_runbook_worker = module.function["eval_runbook_worker"].reserved_concurrent_executions
    } == { api = -1, cleanup = 1, db_sync = 1, eval_runbook_worker = -1 }
    error_message = "cleanup and db_sync run one at a time; the API and the SQS worker stay on the unreserved pool."
  }
  assert {
    condition = [
      for r in aws_s3_bucket_lifecycle_configuration.artifacts[0].rule : [r.filter[0].prefix, r.noncurrent_version_expiration[0].noncurrent_days]
      if r.id == "expire-noncurrent-lambda-artifacts"
    ] == [["lambda/", 30]]
    error_message = "Noncurrent artifact versions under lambda/ expire after the rollback window."
  }
}

run "artifact_bucket_denies_plain_http" {
  command = plan

  assert {
    condition = jsonencode(jsondecode(aws_s3_bucket_policy.artifacts[0].policy).Statement) == jsonencode([{
      Action    = "s3:*"
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
      Effect    = "Deny"
      Principal = "*"
      Resource  = ["arn:aws:s3:::bluemoxon-frontend-default", "arn:aws:s3:::bluemoxon-frontend-default/*"]
      Sid       = "DenyInsecureTransport"
    }])
    error_message = "The artifact bucket refuses every request made over plain HTTP."
  }
}

run "layer_cache_readers_may_read_layers_only" {
  command = plan

  variables {
    layer_cache_reader_accounts = ["210987654321"]
  }

  assert {
    condition = jsonencode(jsondecode(aws_s3_bucket_policy.artifacts[0].policy).Statement[1]) == jsonencode({
      Action    = "s3:GetObject"
      Effect    = "Allow"
      Principal = { AWS = ["arn:aws:iam::210987654321:root"] }
      Resource  = "arn:aws:s3:::bluemoxon-frontend-default/lambda/layer-*"
      Sid       = "LayerCacheReadersGetLayers"
    })
    error_message = "A reader account may get built layers (zip, manifest, SBOM) and nothing else of the bucket."
  }
  assert {
    condition = jsonencode(jsondecode(aws_s3_bucket_policy.artifacts[0].policy).Statement[2].Condition) == jsonencode({
      StringLike = { "s3:prefix" = "lambda/layer-*" }
    })
    error_message = "A reader account may list only layer keys (so a cache miss is a 404, not a 403)."
  }
  assert {
    condition     = length(jsondecode(aws_s3_bucket_policy.artifacts[0].policy).Statement) == 3
    error_message = "The readers' statements come on top of the plain-HTTP deny."
  }
}

run "layer_cache_reader_must_be_an_account_id" {
  command = plan

  variables {
    layer_cache_reader_accounts = ["production"]
  }

  expect_failures = [var.layer_cache_reader_accounts]
}


run "emulator_buckets_have_no_tls_policy" {
  command = plan

  variables {
    aws_endpoint = "http://127.0.0.1:5000"
  }

  assert {
    condition     = length(aws_s3_bucket_policy.artifacts) == 0
    error_message = "The emulator speaks plain HTTP only: a TLS-only policy would refuse every deploy."
  }
}

run "lifecycle_rules_can_be_switched_off" {
  command = plan

  variables {
    artifact_lifecycle_enabled = false
  }

  assert {
    condition     = length(aws_s3_bucket_lifecycle_configuration.artifacts) == 0
    error_message = "A disposable (emulator) environment can skip the lifecycle rules."
  }
}

run "arm64_and_overrides" {
  command = plan

  variables {
    architecture      = "arm64"
    function_settings = { api = { memory_size = 2048 }, db_sync = { reserved_concurrency = -1 } }
  }

  assert {
    condition     = module.function["db_sync"].reserved_concurrent_executions == -1 && module.cleanup["cleanup"].reserved_concurrent_executions == 1
    error_message = "function_settings must override one function's reserved concurrency and leave the others."
  }

  assert {
    condition     = output.deploy_targets.architecture == "arm64"
    error_message = "architecture must flow to the contract."
  }
}

run "workspace_guard" {
  command = plan

  variables {
    environment = "production"
  }

  expect_failures = [terraform_data.workspace_guard]
}

run "cleanup_prefix_must_not_reach_artifacts" {
  command = plan

  variables {
    cleanup_prefix = "lambda/"
  }

  expect_failures = [terraform_data.workspace_guard]
}

run "rejects_unknown_architecture" {
  command = plan

  variables {
    architecture = "sparc"
  }

  expect_failures = [var.architecture]
}

run "github_deploy_role" {
  command = plan

  variables {
    github_repository = "example-org/bluemoxon"
  }


  assert {
    condition     = length(module.github_oidc) == 1
    error_message = "github_repository turns the CI deploy role on."
  }
  assert {
    condition     = module.github_oidc[0].infra_role_arn != null && output.github_infra_role_arn == module.github_oidc[0].infra_role_arn
    error_message = "github_repository also creates the infrastructure role (terraform apply), separate from the deploy role."
  }
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(module.github_oidc[0].policy_json).Statement : [for a in s.Action : !strcontains(a, "*")]
    ]))
    error_message = "The CI deploy role must not allow wildcard actions (no lambda:*, no s3:*)."
  }
  assert {
    condition = [for s in jsondecode(module.github_oidc[0].policy_json).Statement : s.Resource if s.Sid == "PublishLayerVersions"][0] == [
      "arn:aws:lambda:us-east-1:123456789012:layer:bluemoxon-default-deps"
    ]
    error_message = "The CI role publishes versions of this env's layer only."
  }
  assert {
    condition = toset([for s in jsondecode(module.github_oidc[0].policy_json).Statement : s.Resource if s.Sid == "DeployFunctions"][0]) == toset([
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-api",
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-api:*",
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-cleanup",
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-cleanup:*",
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-db-sync",
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-db-sync:*",
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-eval-runbook-worker",
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-eval-runbook-worker:*",
    ])
    error_message = "The CI role deploys exactly the four functions."
  }
  assert {
    condition = [for s in jsondecode(module.github_oidc[0].policy_json).Statement : s.Resource if s.Sid == "WriteArtifacts"][0] == [
      "arn:aws:s3:::bluemoxon-frontend-default/lambda/*"
    ]
    error_message = "The CI role writes artifacts under lambda/ only."
  }
}

# A team's own functions: a map of two functions with other names plans, and the contract
# lists exactly them (the deploy tasks name no function of the sample app).
run "two_functions_of_other_names" {
  command = plan

  variables {
    functions = {
      notifier = {
        handler  = "notify.main.handler"
        sources  = ["notify"]
        invokes  = { REPORTER_FUNCTION_NAME = "reporter" }
        database = true
      }
      reporter = {
        handler     = "reports.handler"
        sources     = ["reports.py"]
        memory_size = 1024
        timeout     = 120
        environment = { REPORT_FORMAT = "csv" }
        runtime     = "python3.13"
      }
    }
    function_settings = { reporter = { reserved_concurrency = 2 } }
  }

  assert {
    condition = output.deploy_targets.functions == {
      notifier = { name = "bluemoxon-default-notifier", handler = "notify.main.handler", runtime = "python3.12", architectures = tolist(["x86_64"]), region = "us-east-1", sources = tolist(["notify"]) }
      reporter = { name = "bluemoxon-default-reporter", handler = "reports.handler", runtime = "python3.13", architectures = tolist(["x86_64"]), region = "us-east-1", sources = tolist(["reports.py"]) }
    }
    error_message = "deploy_targets must list exactly the functions of var.functions."
  }
  assert {
    condition     = length(module.cleanup) == 0 && keys(module.function) == ["notifier", "reporter"]
    error_message = "Every function of kind \"function\" gets the lambda module; no cleanup function unless one asks for it."
  }
  assert {
    condition     = jsonencode(module.function["reporter"].environment_variables) == jsonencode({ ENVIRONMENT = "default", REPORT_FORMAT = "csv" }) && module.function["notifier"].environment_variables["DATABASE_URL_SECRET_ARN"] == aws_secretsmanager_secret.database_url[0].arn
    error_message = "A function gets its own environment, and the database only when it asks."
  }
  assert {
    condition     = module.function["notifier"].environment_variables["REPORTER_FUNCTION_NAME"] == "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-reporter:live"
    error_message = "invokes hands a function the live alias ARN of the function it may invoke."
  }
  assert {
    condition = [for s in jsondecode(module.function["notifier"].role_policy_json).Statement : s.Resource if s.Sid == "InvokeFunctions"][0] == [
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-reporter",
      "arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-default-reporter:*",
    ]
    error_message = "A function may invoke only what its invokes names."
  }
  assert {
    condition     = module.function["reporter"].reserved_concurrent_executions == 2 && module.function["notifier"].reserved_concurrent_executions == -1
    error_message = "function_settings overrides one function of the map and leaves the other."
  }
}

run "functions_must_not_be_empty" {
  command = plan

  variables {
    functions = {}
  }

  expect_failures = [var.functions]
}

run "function_handler_outside_its_sources" {
  command = plan

  variables {
    functions = {
      notifier = { handler = "notify.main.handler", sources = ["reports"] }
    }
  }

  expect_failures = [var.functions]
}

run "function_source_outside_backend" {
  command = plan

  variables {
    functions = {
      notifier = { handler = "notify.main.handler", sources = ["../notify"] }
    }
  }

  expect_failures = [var.functions]
}

run "function_key_must_make_a_lambda_name" {
  command = plan

  variables {
    functions = {
      "Notifier-1" = { handler = "notify.main.handler", sources = ["notify"] }
    }
  }

  expect_failures = [var.functions]
}

run "function_invokes_an_unknown_function" {
  command = plan

  variables {
    functions = {
      notifier = { handler = "notify.main.handler", sources = ["notify"], invokes = { X = "nosuch" } }
    }
  }

  expect_failures = [var.functions]
}

run "function_settings_of_an_unknown_function" {
  command = plan

  variables {
    function_settings = { notifier = { memory_size = 512 } }
  }

  expect_failures = [var.function_settings]
}

run "snap_start_reaches_every_function" {
  command = plan

  variables {
    snap_start = true
  }

  assert {
    condition = alltrue(concat(
      [for fn in module.function : fn.snap_start_apply_on == "PublishedVersions"],
      [for fn in module.cleanup : fn.snap_start_apply_on == "PublishedVersions"],
    ))
    error_message = "invoke.yaml's snap_start (var.snap_start) must reach every function, the cleanup kind's too."
  }
}
