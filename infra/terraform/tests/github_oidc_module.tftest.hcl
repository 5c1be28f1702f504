# Contract of modules/github-oidc-deploy-role: each role trusts one job (the deploy role a job in
# the env's GitHub environment, the infrastructure role one in the env's infra environment, both
# pinned to the deploy workflow on main by default); the deploy role publishes, attaches our (or
# trusted) layers, moves aliases and invokes only what verify invokes; the infrastructure role
# manages what Terraform manages, by name prefix, creates roles only under the boundary, and
# never touches the CI roles themselves. What IAM decides for each statement: github_oidc_iam.tftest.hcl.

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
  github_repository = "example-org/bluemoxon"
  environment       = "staging"
  role_name         = "bluemoxon-staging-github-deploy"
  infra_role_name   = "bluemoxon-staging-github-infra"
  name_prefix       = "bluemoxon-staging"
  layer_arn         = "arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps"
  function_arns = [
    "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api",
    "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-cleanup",
  ]
  artifact_bucket_arn = "arn:aws:s3:::bluemoxon-frontend-staging"
  artifact_prefix     = "lambda/"
}

run "trust_only_the_environment" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    pin_job_workflow_ref = false
  }

  assert {
    condition = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Condition.StringEquals == {
      "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
      "token.actions.githubusercontent.com:sub" = "repo:example-org/bluemoxon:environment:staging"
    }
    error_message = "Only a job in the staging GitHub environment may assume the deploy role; a main-branch job without an environment may not."
  }
  assert {
    condition = jsondecode(aws_iam_role.infra.assume_role_policy).Statement[0].Condition.StringEquals == {
      "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
      "token.actions.githubusercontent.com:sub" = "repo:example-org/bluemoxon:environment:staging-infra"
    }
    error_message = "Only a job in the staging-infra GitHub environment may assume the infrastructure role: the deploy job cannot."
  }
  assert {
    condition     = !strcontains(aws_iam_role.this.assume_role_policy, "ref:refs/heads") && !strcontains(aws_iam_role.infra.assume_role_policy, "ref:refs/heads")
    error_message = "No branch subject: a branch has no reviewers."
  }
  assert {
    condition     = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Principal.Federated == output.oidc_provider_arn
    error_message = "The role trusts the GitHub OIDC provider."
  }
}

run "job_workflow_ref_pinned_by_default" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  assert {
    condition = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:sub"] == join("", [
      "repo:example-org/bluemoxon:environment:staging:",
      "job_workflow_ref:example-org/bluemoxon/.github/workflows/deploy.yml@refs/heads/main",
    ])
    error_message = "With the subject template, only the deploy workflow on main, in the environment, may assume the deploy role."
  }
  assert {
    condition = jsondecode(aws_iam_role.infra.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:sub"] == join("", [
      "repo:example-org/bluemoxon:environment:staging-infra:",
      "job_workflow_ref:example-org/bluemoxon/.github/workflows/deploy.yml@refs/heads/main",
    ])
    error_message = "The infrastructure role pins the same workflow, in its own environment."
  }
  assert {
    condition     = aws_iam_role.infra.assume_role_policy != aws_iam_role.this.assume_role_policy
    error_message = "The two roles never trust the same subject."
  }
}

run "infra_environment_may_be_named" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    infra_environment    = "staging-terraform"
    pin_job_workflow_ref = false
  }

  assert {
    condition     = jsondecode(aws_iam_role.infra.assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:sub"] == "repo:example-org/bluemoxon:environment:staging-terraform"
    error_message = "infra_environment names the infrastructure role's GitHub environment."
  }
}

run "rejects_one_environment_for_both_roles" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    infra_environment = "staging"
  }

  expect_failures = [aws_iam_role.infra]
}

run "deploy_role_is_least_privilege" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : [for a in s.Action : !strcontains(a, "*")]
    ]))
    error_message = "No wildcard actions in the deploy role."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : alltrue([
        for a in s.Action : !startswith(a, "iam:") && !contains(["lambda:CreateFunction", "lambda:DeleteFunction", "s3:CreateBucket", "s3:PutBucketPolicy"], a)
      ])
    ])
    error_message = "The deploy role changes no infrastructure: no IAM, no function or bucket creation."
  }
  assert {
    condition = jsonencode([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if contains(s.Action, "lambda:UpdateFunctionConfiguration")]) == jsonencode([{
      Sid      = "AttachOurLayers"
      Effect   = "Allow"
      Action   = ["lambda:UpdateFunctionConfiguration"]
      Resource = var.function_arns
      Condition = {
        "ForAllValues:StringLike" = { "lambda:Layer" = ["arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps:*"] }
        Null                      = { "lambda:Layer" = "false" }
      }
    }])
    error_message = "UpdateFunctionConfiguration only with versions of our layer, and only with Layers."
  }
  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s.Resource if contains(s.Action, "lambda:InvokeFunction")] == [[
      "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-api:live",
      "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-cleanup:live",
    ]]
    error_message = "The deploy role invokes only what verify invokes: each function's live alias."
  }
  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if contains(s.Action, "lambda:AddLayerVersionPermission")]) == 0
    error_message = "Without configured shares the deploy role may share the layer with nobody."
  }
  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if s.Sid == "ReadTrustedLayers"]) == 0
    error_message = "Without trusted layers the deploy role reads no foreign layer."
  }
}

run "trusted_layers_and_shares" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    trusted_layer_arns    = ["arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension"]
    share_account_ids     = ["210987654321"]
    share_organization_id = "o-abc123"
  }

  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s.Condition if s.Sid == "AttachOurLayers"]) == {
      "ForAllValues:StringLike" = { "lambda:Layer" = [
        "arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps:*",
        "arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension:*",
      ] }
      Null = { "lambda:Layer" = "false" }
    }
    error_message = "Trusted layers may be attached too, and nothing else."
  }
  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s.Resource if s.Sid == "ReadTrustedLayers"]) == [
      "arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension:*",
    ]
    error_message = "Attaching and verifying a trusted layer needs GetLayerVersion on its versions, and on nothing else foreign."
  }
  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if contains(s.Action, "lambda:AddLayerVersionPermission")] == [{
      Sid       = "ShareLayerVersions"
      Effect    = "Allow"
      Action    = ["lambda:AddLayerVersionPermission"]
      Resource  = ["arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-deps:*"]
      Condition = { StringEquals = { "lambda:Principal" = ["210987654321", "*"] } }
    }]
    error_message = "AddLayerVersionPermission only on our layer, only to the configured accounts (and the organization's \"*\")."
  }
  assert {
    # Not the Null test: Terraform updates a function's configuration without Layers when only
    # its settings change.
    condition = one([for s in jsondecode(aws_iam_role_policy.infra.policy).Statement : s.Condition if s.Sid == "ConfigureFunctions"]) == {
      "ForAllValues:StringLike" = one([
        for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s.Condition["ForAllValues:StringLike"] if s.Sid == "AttachOurLayers"
      ])
    }
    error_message = "The infrastructure role creates and configures functions with the same layers only."
  }
}

run "infra_role_manages_what_terraform_manages_by_prefix" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    state_bucket = "bluemoxon-terraform-state-staging"
  }

  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_role_policy.infra.policy).Statement : [
        for r in s.Resource : anytrue([
          startswith(r, "arn:aws:lambda:us-west-2:123456789012:function:bluemoxon-staging-"),
          startswith(r, "arn:aws:lambda:us-west-2:123456789012:layer:bluemoxon-staging-"),
          startswith(r, "arn:aws:iam::123456789012:role/bluemoxon-staging-"),
          startswith(r, "arn:aws:logs:us-west-2:123456789012:log-group:"),
          startswith(r, "arn:aws:s3:::bluemoxon-frontend-staging"),
          startswith(r, "arn:aws:s3:::bluemoxon-terraform-state-staging"),
          startswith(r, "arn:aws:iam::123456789012:oidc-provider/"),
          startswith(r, "arn:aws:secretsmanager:us-west-2:123456789012:secret:bluemoxon-staging/"),
          r == "arn:aws:iam::123456789012:policy/bluemoxon-staging-execution-boundary",
          r == "*" && s.Sid == "ListLayers",
          s.Sid == "ReadTrustedLayers",
        ])
      ] if s.Effect == "Allow"
    ]))
    error_message = "Every infrastructure grant is scoped to this env's names (ListLayers takes only \"*\")."
  }
  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.infra.policy).Statement : s if s.Sid == "NeverChangeCiRoles"]) == {
      Sid       = "NeverChangeCiRoles"
      Effect    = "Deny"
      NotAction = ["iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"]
      Resource = [
        "arn:aws:iam::123456789012:role/bluemoxon-staging-github-*",
        "arn:aws:iam::123456789012:role/bluemoxon-staging-github-deploy",
        "arn:aws:iam::123456789012:role/bluemoxon-staging-github-infra",
      ]
    }
    error_message = "An apply in CI can never change the CI roles (its own rights included), by prefix and by name."
  }
  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.infra.policy).Statement : s.Condition if s.Sid == "PassExecutionRoles"]) == {
      StringEquals = { "iam:PassedToService" = "lambda.amazonaws.com" }
    }
    error_message = "Execution roles are passed to Lambda only."
  }
  assert {
    condition     = contains(flatten([for s in jsondecode(aws_iam_role_policy.infra.policy).Statement : try(s.Action, [])]), "lambda:CreateFunction")
    error_message = "The infrastructure role can create what the configuration declares (the old single role could not)."
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
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s.Resource if s.Sid == "ReadState"
    ]) == ["arn:aws:s3:::bluemoxon-terraform-state-staging/env:/staging/bluemoxon/terraform.tfstate"]
    error_message = "The deploy role reads its environment's state (terraform output) and never writes it."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s.Resource if s.Sid == "HoldDeployLock"
    ]) == ["arn:aws:s3:::bluemoxon-terraform-state-staging/env:/staging/bluemoxon/terraform.tfstate.deploy-lock"]
    error_message = "The deploy role holds the deploy lock."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.infra.policy).Statement : s.Resource if s.Sid == "ReadWriteState"
      ]) == [
      "arn:aws:s3:::bluemoxon-terraform-state-staging/env:/staging/bluemoxon/terraform.tfstate",
      "arn:aws:s3:::bluemoxon-terraform-state-staging/env:/staging/bluemoxon/terraform.tfstate.tflock",
      "arn:aws:s3:::bluemoxon-terraform-state-staging/env:/staging/bluemoxon/terraform.tfstate.deploy-lock",
    ]
    error_message = "The infrastructure role reads and writes exactly its environment's state object, lock file and deploy lock."
  }
  assert {
    condition = contains(one([
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s.Action if s.Sid == "ReadLogGroups"
    ]), "logs:FilterLogEvents")
    error_message = "verify's remote check reads the functions' logs."
  }
}

run "rejects_bad_trusted_layer_and_share_account" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    trusted_layer_arns = ["arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension:38"]
    share_account_ids  = ["everyone"]
  }

  expect_failures = [var.trusted_layer_arns, var.share_account_ids]
}

run "shared_layer_cache_is_read_only" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    layer_cache_bucket = "bluemoxon-frontend-staging"
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if s.Sid == "ReadSharedLayerCache"
      ]) == {
      Sid      = "ReadSharedLayerCache"
      Effect   = "Allow"
      Action   = ["s3:GetObject"]
      Resource = ["arn:aws:s3:::bluemoxon-frontend-staging/lambda/layer-*"]
    }
    error_message = "The deploy role reads built layers from the shared cache bucket and writes nothing there."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if s.Sid == "ListSharedLayerCache"
      ]) == {
      Sid       = "ListSharedLayerCache"
      Effect    = "Allow"
      Action    = ["s3:ListBucket"]
      Resource  = ["arn:aws:s3:::bluemoxon-frontend-staging"]
      Condition = { StringLike = { "s3:prefix" = ["lambda/layer-*"] } }
    }
    error_message = "The deploy role lists only layer keys of the shared cache bucket (a miss is then a 404)."
  }
  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if strcontains(s.Sid, "SharedLayerCache")]) == 2
    error_message = "Reading the shared cache adds exactly these two statements: no write, no other key."
  }
}

run "no_shared_layer_cache_by_default" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if strcontains(s.Sid, "SharedLayerCache")]) == 0
    error_message = "Without a shared cache bucket the deploy role reads no other bucket."
  }
}

run "cache_publisher_versions_are_readable" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    layer_cache_bucket        = "bluemoxon-frontend-staging"
    layer_cache_publisher_arn = "arn:aws:lambda:us-west-2:111122223333:layer:bluemoxon-staging-deps"
  }

  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if s.Sid == "ReadCachePublisherLayer"
      ]) == {
      Sid      = "ReadCachePublisherLayer"
      Effect   = "Allow"
      Action   = ["lambda:GetLayerVersion"]
      Resource = ["arn:aws:lambda:us-west-2:111122223333:layer:bluemoxon-staging-deps:*"]
    }
    error_message = "The deploy role reads the publisher's layer versions (to compare CodeSha256) and nothing more."
  }
}

run "no_cache_publisher_by_default" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.this.policy).Statement : s if s.Sid == "ReadCachePublisherLayer"]) == 0
    error_message = "Without a cache publisher the deploy role reads no other layer."
  }
}

run "rejects_a_versioned_cache_publisher" {
  command = plan

  module {
    source = "./modules/github-oidc-deploy-role"
  }

  variables {
    layer_cache_publisher_arn = "arn:aws:lambda:us-west-2:111122223333:layer:bluemoxon-staging-deps:7"
  }

  expect_failures = [var.layer_cache_publisher_arn]
}
