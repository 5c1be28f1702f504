# The database URL is a secret: Terraform creates the Secrets Manager secret and hands its ARN to
# the functions that ask for the database, never the value. So no function's environment holds
# the URL, no plan or state holds it (there is no secret-version resource; the Python test
# tests/unit/test_terraform_secrets.py checks the whole configuration for one), only those
# functions may read exactly that secret, and no CI role can read, replace or erase its value.

mock_provider "aws" {
  override_during = plan

  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/bluemoxon-default-execution-boundary" }
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
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bluemoxon-default/database-url-AbCdEf" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

variables {
  environment = "default"
}

run "functions_get_the_secret_arn_never_the_url" {
  command = plan

  assert {
    condition     = alltrue([for m in values(merge(module.function, module.cleanup)) : !contains(keys(m.environment_variables), "DATABASE_URL")])
    error_message = "No function's environment holds DATABASE_URL."
  }
  assert {
    condition = jsonencode({ for key, m in merge(module.function, module.cleanup) : key => lookup(m.environment_variables, "DATABASE_URL_SECRET_ARN", "none") }) == jsonencode({
      api                 = aws_secretsmanager_secret.database_url[0].arn
      cleanup             = "none"
      db_sync             = aws_secretsmanager_secret.database_url[0].arn
      eval_runbook_worker = aws_secretsmanager_secret.database_url[0].arn
    })
    error_message = "The functions with database = true get the secret's ARN, the others nothing."
  }
  assert {
    condition     = aws_secretsmanager_secret.database_url[0].name == "bluemoxon-default/database-url" && aws_secretsmanager_secret.database_url[0].recovery_window_in_days == 30
    error_message = "The secret is named after the env and restorable for 30 days by default."
  }
}

run "only_database_functions_read_exactly_the_secret" {
  command = plan

  assert {
    condition = { for key, m in merge(module.function, module.cleanup) : key => flatten([
      for s in jsondecode(m.role_policy_json).Statement : s.Resource if anytrue([for a in s.Action : startswith(a, "secretsmanager:")])
      ]) } == {
      api                 = [aws_secretsmanager_secret.database_url[0].arn]
      cleanup             = []
      db_sync             = [aws_secretsmanager_secret.database_url[0].arn]
      eval_runbook_worker = [aws_secretsmanager_secret.database_url[0].arn]
    }
    error_message = "Each database function's role reaches exactly the secret; the cleanup function's no secret."
  }
  assert {
    condition = alltrue([for m in values(module.function) : flatten([
      for s in jsondecode(m.role_policy_json).Statement : s.Action if anytrue([for a in s.Action : startswith(a, "secretsmanager:")])
    ]) == ["secretsmanager:GetSecretValue"]])
    error_message = "The grant is GetSecretValue only: no writes, no listing."
  }
}

run "the_boundary_lets_the_functions_read_the_secret" {
  command = plan

  variables {
    github_repository = "example-org/bluemoxon"
  }

  assert {
    condition = [for s in jsondecode(module.github_oidc[0].execution_boundary_json).Statement : s.Resource if contains(s.Action, "secretsmanager:GetSecretValue")] == [
      [aws_secretsmanager_secret.database_url[0].arn]
    ]
    error_message = "The execution boundary allows GetSecretValue on exactly the secret, or the functions could not read it."
  }
}

run "no_database_function_no_secret" {
  command = plan

  variables {
    functions = {
      reporter = { handler = "reports.handler", sources = ["reports.py"] }
    }
  }

  assert {
    condition     = length(aws_secretsmanager_secret.database_url) == 0 && jsonencode(module.function["reporter"].environment_variables) == jsonencode({ ENVIRONMENT = "default" })
    error_message = "Without a function asking for the database, no secret and no reference."
  }
}

run "a_database_url_variable_is_refused" {
  command = plan

  variables {
    database_url = "postgresql://app:pw@db/app"
  }

  expect_failures = [var.database_url]
}

run "recovery_window_in_secrets_manager_range" {
  command = plan

  variables {
    secret_recovery_window_days = 3
  }

  expect_failures = [var.secret_recovery_window_days]
}

# What IAM decides for the CI roles and the boundary on secrets (tests/iam-eval reads the text).
run "ci_policies" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    github_repository   = "example-org/bluemoxon"
    environment         = "staging"
    role_name           = "bluemoxon-staging-github-deploy"
    infra_role_name     = "bluemoxon-staging-github-infra"
    name_prefix         = "bluemoxon-staging"
    layer_arn           = "arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps"
    function_arns       = ["arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api"]
    artifact_bucket_arn = "arn:aws:s3:::bluemoxon-frontend-staging"
    artifact_prefix     = "lambda/"
    secret_arns         = ["arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf"]
  }
}

run "ci_infra_role_manages_secrets_never_their_values" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = run.ci_policies.infra_policy_json
    requests = {
      create            = { action = "secretsmanager:CreateSecret", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
      describe          = { action = "secretsmanager:DescribeSecret", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
      read_value        = { action = "secretsmanager:GetSecretValue", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
      put_value         = { action = "secretsmanager:PutSecretValue", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
      update_with_value = { action = "secretsmanager:UpdateSecret", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
      delete_restorable = { action = "secretsmanager:DeleteSecret", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf", context = { "secretsmanager:RecoveryWindowInDays" = ["7"] } }
      delete_at_once    = { action = "secretsmanager:DeleteSecret", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
      another_env       = { action = "secretsmanager:CreateSecret", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-production/database-url-AbCdEf" }
    }
  }

  assert {
    condition = output.decisions == {
      create            = "allow"
      describe          = "allow"
      read_value        = "deny"
      put_value         = "deny"
      update_with_value = "deny"
      delete_restorable = "allow"
      delete_at_once    = "implicit-deny"
      another_env       = "implicit-deny"
    }
    error_message = "A CI apply creates and describes the env's secrets, deletes them only restorably, and can neither read nor write (so never erase) a value."
  }
  assert {
    condition     = length(output.unsupported) == 0
    error_message = "The evaluator implements every condition operator of the infrastructure policy."
  }
}

run "ci_deploy_role_checks_secrets_exist_without_reading_them" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = run.ci_policies.policy_json
    requests = {
      describe   = { action = "secretsmanager:DescribeSecret", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
      read_value = { action = "secretsmanager:GetSecretValue", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
      put_value  = { action = "secretsmanager:PutSecretValue", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
    }
  }

  assert {
    condition     = output.decisions == { describe = "allow", read_value = "implicit-deny", put_value = "implicit-deny" }
    error_message = "The deploy role may only describe the secrets (the preflight's existence check)."
  }
}

run "boundary_allows_exactly_the_secret" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = run.ci_policies.execution_boundary_json
    requests = {
      read_own   = { action = "secretsmanager:GetSecretValue", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
      read_other = { action = "secretsmanager:GetSecretValue", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-production/database-url-AbCdEf" }
      write_own  = { action = "secretsmanager:PutSecretValue", resource = "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/database-url-AbCdEf" }
    }
  }

  assert {
    condition     = output.decisions == { read_own = "allow", read_other = "implicit-deny", write_own = "implicit-deny" }
    error_message = "A role under the boundary reads exactly its secret, writes none."
  }
}
