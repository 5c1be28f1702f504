# What IAM decides for the CI roles' policies, statement by statement: the policy TEXT that
# modules/github-oidc-deploy-role writes, read by the evaluator in tests/iam-eval (itself tested
# in iam_eval.tftest.hcl). Each request names the statement it proves.

mock_provider "aws" {
  override_during = plan

  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-deploy" }
  }
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/bluemoxon-staging-execution-boundary" }
  }
}

variables {
  github_repository = "example-org/bluemoxon"
  environment       = "staging"
  role_name         = "bluemoxon-staging-github-deploy"
  infra_role_name   = "bluemoxon-staging-github-infra"
  name_prefix       = "bluemoxon-staging"
  layer_arn         = "arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps"
  function_arns     = ["arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api"]

  artifact_bucket_arn = "arn:aws:s3:::bluemoxon-frontend-staging"
  artifact_prefix     = "lambda/"
}

run "policies" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  assert {
    condition     = output.execution_boundary_arn == "arn:aws:iam::123456789012:policy/bluemoxon-staging-execution-boundary"
    error_message = "The module defines the boundary, under the env's prefix."
  }
}

run "infra_role_creates_and_changes_roles_only_under_the_boundary" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = run.policies.infra_policy_json
    requests = {
      # ChangeRolesUnderTheBoundary
      create_with_boundary      = { action = "iam:CreateRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn] } }
      put_policy_with_boundary  = { action = "iam:PutRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn] } }
      set_the_boundary          = { action = "iam:PutRolePermissionsBoundary", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn] } }
      create_outside_the_prefix = { action = "iam:CreateRole", resource = "arn:aws:iam::123456789012:role/admin", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn] } }
      # NoRoleChangeWithoutTheBoundary: a role without the boundary (the `*:*` role of the review)
      create_without_boundary     = { action = "iam:CreateRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api" }
      create_with_other_boundary  = { action = "iam:CreateRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PermissionsBoundary" = ["arn:aws:iam::aws:policy/AdministratorAccess"] } }
      put_policy_without_boundary = { action = "iam:PutRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-legacy" }
      attach_with_boundary        = { action = "iam:AttachRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn], "iam:PolicyARN" = ["arn:aws:iam::aws:policy/AdministratorAccess"] } }
      attach_without_boundary     = { action = "iam:AttachRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PolicyARN" = ["arn:aws:iam::aws:policy/AdministratorAccess"] } }
      change_to_other_boundary    = { action = "iam:PutRolePermissionsBoundary", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PermissionsBoundary" = ["arn:aws:iam::aws:policy/AdministratorAccess"] } }
      # NeverRemoveABoundary
      remove_the_boundary = { action = "iam:DeleteRolePermissionsBoundary", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn] } }
      # NeverChangeTheBoundary / ReadTheBoundary
      new_boundary_version = { action = "iam:CreatePolicyVersion", resource = run.policies.execution_boundary_arn }
      default_version      = { action = "iam:SetDefaultPolicyVersion", resource = run.policies.execution_boundary_arn }
      delete_the_boundary  = { action = "iam:DeletePolicy", resource = run.policies.execution_boundary_arn }
      read_the_boundary    = { action = "iam:GetPolicyVersion", resource = run.policies.execution_boundary_arn }
      # ManageExecutionRoles / PassExecutionRoles
      delete_execution_role = { action = "iam:DeleteRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api" }
      pass_to_lambda        = { action = "iam:PassRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PassedToService" = ["lambda.amazonaws.com"] } }
      pass_to_ec2           = { action = "iam:PassRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PassedToService" = ["ec2.amazonaws.com"] } }
    }
  }

  assert {
    condition = output.decisions == {
      create_with_boundary        = "allow"
      put_policy_with_boundary    = "allow"
      set_the_boundary            = "allow"
      create_outside_the_prefix   = "implicit-deny"
      create_without_boundary     = "deny"
      create_with_other_boundary  = "deny"
      put_policy_without_boundary = "deny"
      attach_with_boundary        = "implicit-deny"
      attach_without_boundary     = "deny"
      change_to_other_boundary    = "deny"
      remove_the_boundary         = "deny"
      new_boundary_version        = "deny"
      default_version             = "deny"
      delete_the_boundary         = "deny"
      read_the_boundary           = "allow"
      delete_execution_role       = "allow"
      pass_to_lambda              = "allow"
      pass_to_ec2                 = "implicit-deny"
    }
    error_message = "The infrastructure role creates and changes roles only under the boundary Terraform defines, and never removes or changes a boundary."
  }
  assert {
    condition     = length(output.unsupported) == 0
    error_message = "The evaluator implements every condition operator of the infrastructure policy."
  }
}

run "infra_role_never_touches_the_ci_roles" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = run.policies.infra_policy_json
    requests = {
      own_inline_policy       = { action = "iam:PutRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-infra", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn] } }
      own_trust               = { action = "iam:UpdateAssumeRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-infra" }
      deploy_role_policy      = { action = "iam:PutRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-deploy", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn] } }
      deploy_role_trust       = { action = "iam:UpdateAssumeRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-deploy" }
      delete_deploy_role      = { action = "iam:DeleteRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-deploy" }
      pass_deploy_role        = { action = "iam:PassRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-deploy", context = { "iam:PassedToService" = ["lambda.amazonaws.com"] } }
      tag_own_role            = { action = "iam:TagRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-infra" }
      another_github_role     = { action = "iam:CreateRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-extra", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn] } }
      read_own_role           = { action = "iam:GetRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-infra" }
      read_deploy_role_policy = { action = "iam:GetRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-deploy" }
    }
  }

  assert {
    condition = output.decisions == {
      own_inline_policy       = "deny"
      own_trust               = "deny"
      deploy_role_policy      = "deny"
      deploy_role_trust       = "deny"
      delete_deploy_role      = "deny"
      pass_deploy_role        = "deny"
      tag_own_role            = "deny"
      another_github_role     = "deny"
      read_own_role           = "allow"
      read_deploy_role_policy = "allow"
    }
    error_message = "The infrastructure role reads the CI roles (terraform refresh) and changes neither of them, nor any other <prefix>-github-* role."
  }
}

run "ci_roles_named_outside_the_prefix_are_still_untouchable" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    role_name       = "bluemoxon-staging-deployer"
    infra_role_name = "bluemoxon-staging-terraform"
  }
}

run "renamed_ci_roles_decisions" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = run.ci_roles_named_outside_the_prefix_are_still_untouchable.infra_policy_json
    requests = {
      own_policy    = { action = "iam:PutRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-terraform", context = { "iam:PermissionsBoundary" = ["arn:aws:iam::123456789012:policy/bluemoxon-staging-execution-boundary"] } }
      deploy_policy = { action = "iam:PutRolePolicy", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-deployer", context = { "iam:PermissionsBoundary" = ["arn:aws:iam::123456789012:policy/bluemoxon-staging-execution-boundary"] } }
    }
  }

  assert {
    condition     = output.decisions == { own_policy = "deny", deploy_policy = "deny" }
    error_message = "The CI roles are denied by name too, whatever their names."
  }
}

run "deploy_role_attaches_only_our_layers_and_only_layers" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = run.policies.policy_json
    requests = {
      our_layer                 = { action = "lambda:UpdateFunctionConfiguration", resource = "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api", context = { "lambda:Layer" = ["arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps:7"] } }
      foreign_layer             = { action = "lambda:UpdateFunctionConfiguration", resource = "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api", context = { "lambda:Layer" = ["arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps:7", "arn:aws:lambda:us-west-2:999999999999:layer:evil:1"] } }
      no_layers_at_all          = { action = "lambda:UpdateFunctionConfiguration", resource = "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api" }
      another_function          = { action = "lambda:UpdateFunctionConfiguration", resource = "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-other", context = { "lambda:Layer" = ["arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps:7"] } }
      create_a_role             = { action = "iam:CreateRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PermissionsBoundary" = [run.policies.execution_boundary_arn] } }
      pass_a_role               = { action = "iam:PassRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-api", context = { "iam:PassedToService" = ["lambda.amazonaws.com"] } }
      invoke_live               = { action = "lambda:InvokeFunction", resource = "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api:live" }
      invoke_latest             = { action = "lambda:InvokeFunction", resource = "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api" }
      upload_artifact           = { action = "s3:PutObject", resource = "arn:aws:s3:::bluemoxon-frontend-staging/lambda/layer-abc.zip" }
      upload_outside_its_prefix = { action = "s3:PutObject", resource = "arn:aws:s3:::bluemoxon-frontend-staging/index.html" }
    }
  }

  assert {
    condition = output.decisions == {
      our_layer                 = "allow"
      foreign_layer             = "implicit-deny"
      no_layers_at_all          = "implicit-deny"
      another_function          = "implicit-deny"
      create_a_role             = "implicit-deny"
      pass_a_role               = "implicit-deny"
      invoke_live               = "allow"
      invoke_latest             = "implicit-deny"
      upload_artifact           = "allow"
      upload_outside_its_prefix = "implicit-deny"
    }
    error_message = "The deploy role sets only our layers (a call without Layers is refused), touches no IAM, invokes only live, writes only artifacts."
  }
  assert {
    condition     = length(output.unsupported) == 0
    error_message = "The evaluator implements every condition operator of the deploy policy."
  }
}

run "boundary_caps_every_created_role" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = run.policies.execution_boundary_json
    requests = {
      write_own_logs     = { action = "logs:PutLogEvents", resource = "arn:aws:logs:us-west-2:123456789012:log-group:/aws/lambda/bluemoxon-staging-api:log-stream:x" }
      invoke_cleanup     = { action = "lambda:InvokeFunction", resource = "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-cleanup:live" }
      clean_artifacts    = { action = "s3:DeleteObject", resource = "arn:aws:s3:::bluemoxon-frontend-staging/lambda/old.zip" }
      any_iam            = { action = "iam:CreateRole", resource = "arn:aws:iam::123456789012:role/x" }
      assume_a_role      = { action = "sts:AssumeRole", resource = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-infra" }
      everything         = { action = "ec2:RunInstances", resource = "arn:aws:ec2:us-west-2:123456789012:instance/*" }
      another_env_bucket = { action = "s3:GetObject", resource = "arn:aws:s3:::bluemoxon-frontend-production/lambda/x.zip" }
    }
  }

  assert {
    condition = output.decisions == {
      write_own_logs     = "allow"
      invoke_cleanup     = "allow"
      clean_artifacts    = "allow"
      any_iam            = "implicit-deny"
      assume_a_role      = "implicit-deny"
      everything         = "implicit-deny"
      another_env_bucket = "implicit-deny"
    }
    error_message = "A role created under the boundary can do what the functions do and nothing more: a `*:*` inline policy still cannot reach IAM, STS or another env."
  }
}

run "boundary_statements_refuse_iam" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    boundary_statements = [{ sid = "Escalate", actions = ["iam:PutRolePolicy"], resources = ["*"] }]
  }

  expect_failures = [var.boundary_statements]
}
