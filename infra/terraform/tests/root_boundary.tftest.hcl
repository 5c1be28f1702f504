# With CI roles (github_repository set) every execution role the root module creates carries
# the permissions boundary the infrastructure role's policy requires; otherwise a CI apply
# could not create them. Without CI roles, no boundary (the local emulator's stack).

mock_provider "aws" {
  override_during = plan

  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/bluemoxon-default-execution-boundary" }
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
}

variables {
  environment = "default"
}

run "execution_roles_carry_the_boundary_the_infra_role_requires" {
  command = plan

  variables {
    github_repository = "example-org/bluemoxon"
  }

  assert {
    condition = [for m in values(merge(module.function, module.cleanup)) : m.role.permissions_boundary] == [
      for _ in range(4) : module.github_oidc[0].execution_boundary_arn
    ]
    error_message = "Every execution role is created under the CI boundary."
  }
  assert {
    condition = one([
      for s in jsondecode(module.github_oidc[0].infra_policy_json).Statement : s.Condition.StringEquals["iam:PermissionsBoundary"] if s.Sid == "ChangeRolesUnderTheBoundary"
    ]) == module.github_oidc[0].execution_boundary_arn
    error_message = "The boundary the roles carry is the one the infrastructure role's policy requires."
  }
}

run "no_boundary_without_ci_roles" {
  command = plan

  assert {
    condition     = alltrue([for m in values(merge(module.function, module.cleanup)) : m.role.permissions_boundary == null])
    error_message = "Without CI roles there is no boundary to carry."
  }
}
