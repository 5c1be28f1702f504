# Contract of modules/github-oidc-deploy-role: only main and the env's GitHub
# environment may assume the role.

mock_provider "aws" {
  # Plan-only runs: use the mocked ARNs below while planning, not only on apply.
  override_during = plan

  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/bluemoxon-staging-github-deploy" }
  }
}

variables {
  github_repository   = "example-org/bluemoxon"
  environment         = "staging"
  role_name           = "bluemoxon-staging-github-deploy"
  layer_arn           = "arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps"
  function_arns       = ["arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api"]
  artifact_bucket_arn = "arn:aws:s3:::bluemoxon-frontend-staging"
  artifact_prefix     = "lambda/"
}

run "trust_policy_pins_repository" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  assert {
    condition = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Condition.StringEquals == {
      "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
      "token.actions.githubusercontent.com:sub" = [
        "repo:example-org/bluemoxon:ref:refs/heads/main",
        "repo:example-org/bluemoxon:environment:staging",
      ]
    }
    error_message = "Only main and the staging environment of the repository may assume the role."
  }
  assert {
    condition     = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Principal.Federated == output.oidc_provider_arn
    error_message = "The role trusts the GitHub OIDC provider."
  }
}

run "rejects_bad_repository" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    github_repository = "not a repo"
  }

  expect_failures = [var.github_repository]
}

run "state_object_and_log_reads_granted" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    state_bucket   = "bluemoxon-terraform-state-staging"
    state_key      = "bluemoxon/terraform.tfstate"
    log_group_arns = ["arn:aws:logs:us-west-2:123456789012:log-group:/aws/lambda/bluemoxon-staging-api"]
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s.Resource if s.Sid == "ReadWriteState"
      ]) == [
      "arn:aws:s3:::bluemoxon-terraform-state-staging/env:/staging/bluemoxon/terraform.tfstate",
      "arn:aws:s3:::bluemoxon-terraform-state-staging/env:/staging/bluemoxon/terraform.tfstate.tflock",
      "arn:aws:s3:::bluemoxon-terraform-state-staging/env:/staging/bluemoxon/terraform.tfstate.deploy-lock",
    ]
    error_message = "The CI role reads and writes exactly its environment's state object, lock file and deploy lock."
  }
  assert {
    condition = contains(one([
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s.Action if s.Sid == "ReadLogGroups"
    ]), "logs:FilterLogEvents")
    error_message = "verify's remote check reads the functions' logs."
  }
}
