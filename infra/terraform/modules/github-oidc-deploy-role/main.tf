locals {
  oidc_host         = "token.actions.githubusercontent.com"
  oidc_provider_arn = var.create_oidc_provider ? try(aws_iam_openid_connect_provider.this[0].arn, null) : var.oidc_provider_arn

  # Only a job running in this env's GitHub environment (and so behind its protection rules:
  # production's reviewers) may assume either role. A job on main without an environment gets a
  # `ref:refs/heads/main` subject, which matches nothing here. IAM cannot read custom claims such
  # as job_workflow_ref, but GitHub can put it into the subject (the repository's OIDC subject
  # template with repo, context and job_workflow_ref): then the subject also pins the deploy
  # workflow on main.
  subject = var.pin_job_workflow_ref ? join(":", [
    "repo:${var.github_repository}:environment:${var.environment}",
    "job_workflow_ref:${var.github_repository}/${var.deploy_workflow}@refs/heads/main",
  ]) : "repo:${var.github_repository}:environment:${var.environment}"

  account = split(":", var.layer_arn)[4]
  region  = split(":", var.layer_arn)[3]

  # What the deploy may attach: our layer's versions and the trusted layers' (invoke.yaml's
  # verify.trusted_layers); any other layer on a function is refused by IAM as by verify.
  attachable_layers = concat(["${var.layer_arn}:*"], [for arn in var.trusted_layer_arns : "${arn}:*"])
  # Layer sharing: only to the configured accounts, or "*" when an organization is configured
  # (IAM cannot tell an organization-wide "*" from a public one; the share task refuses public
  # shares unless allow_public is set).
  share_principals = concat(var.share_account_ids, var.share_organization_id == null ? [] : ["*"])
  # verify's remote check invokes each function's alias, nothing else.
  alias_arns = [for arn in var.function_arns : "${arn}:${var.alias_name}"]

  qualified_function_arns = flatten([for arn in var.function_arns : [arn, "${arn}:*"]])

  deploy_statements = [
    {
      Sid      = "PublishLayerVersions"
      Action   = ["lambda:PublishLayerVersion"]
      Resource = [var.layer_arn]
    },
    {
      Sid = "ManageLayerVersions"
      Action = [
        "lambda:GetLayerVersion",
        "lambda:DeleteLayerVersion",
        "lambda:GetLayerVersionPolicy",
        "lambda:RemoveLayerVersionPermission",
      ]
      Resource = ["${var.layer_arn}:*"]
    },
    {
      # Present only when sharing is configured: no principals, no statement.
      Sid       = "ShareLayerVersions"
      Action    = ["lambda:AddLayerVersionPermission"]
      Resource  = length(local.share_principals) == 0 ? [] : ["${var.layer_arn}:*"]
      Condition = { StringEquals = { "lambda:Principal" = local.share_principals } }
    },
    {
      # IAM defines no resource type for listing layers: these two only take "*".
      Sid      = "ListLayers"
      Action   = ["lambda:ListLayers", "lambda:ListLayerVersions"]
      Resource = ["*"]
    },
    {
      # Attaching a layer needs GetLayerVersion on it, and verify downloads every layer it runs.
      Sid      = "ReadTrustedLayers"
      Action   = ["lambda:GetLayerVersion"]
      Resource = [for arn in var.trusted_layer_arns : "${arn}:*"]
    },
    {
      Sid = "ReadFunctions"
      Action = [
        "lambda:GetFunction",
        "lambda:GetFunctionConfiguration",
        "lambda:ListVersionsByFunction",
        "lambda:ListAliases",
        "lambda:GetAlias",
      ]
      Resource = local.qualified_function_arns
    },
    {
      Sid = "DeployFunctions"
      Action = [
        "lambda:UpdateFunctionCode",
        "lambda:PublishVersion",
        "lambda:UpdateAlias",
      ]
      Resource = local.qualified_function_arns
    },
    {
      # Attach sets the layers; IAM checks every layer of the request (ForAllValues).
      Sid       = "AttachOurLayers"
      Action    = ["lambda:UpdateFunctionConfiguration"]
      Resource  = var.function_arns
      Condition = { "ForAllValues:StringLike" = { "lambda:Layer" = local.attachable_layers } }
    },
    {
      Sid      = "InvokeForVerify"
      Action   = ["lambda:InvokeFunction"]
      Resource = local.alias_arns
    },
    {
      # Publish checks which artifacts exist before uploading (HEAD needs ListBucket to tell 404).
      Sid      = "ListArtifactBucket"
      Action   = ["s3:ListBucket"]
      Resource = [var.artifact_bucket_arn]
    },
    {
      Sid = "WriteArtifacts"
      Action = [
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectTagging",
        "s3:PutObject",
      ]
      Resource = ["${var.artifact_bucket_arn}/${var.artifact_prefix}*"]
    },
    {
      # FilterLogEvents: verify's remote check reads recent logs for Runtime.ImportModuleError.
      Sid      = "ReadLogGroups"
      Action   = ["logs:FilterLogEvents"]
      Resource = flatten([for arn in var.log_group_arns : [arn, "${arn}:*"]])
    },
  ]

  # Everything the Terraform configuration manages, by name prefix: the functions, their layer,
  # execution roles and log groups, the artifact bucket. Not the CI roles themselves: an apply
  # in CI must not widen its own or the deploy role's rights (those change from an admin's machine).
  fn_prefix_arn  = "arn:aws:lambda:${local.region}:${local.account}:function:${var.name_prefix}-*"
  layer_prefix   = "arn:aws:lambda:${local.region}:${local.account}:layer:${var.name_prefix}-*"
  role_prefix    = "arn:aws:iam::${local.account}:role/${var.name_prefix}-*"
  ci_role_prefix = "arn:aws:iam::${local.account}:role/${var.name_prefix}-github-*"
  log_prefix     = "arn:aws:logs:${local.region}:${local.account}:log-group:/aws/lambda/${var.name_prefix}-*"

  infra_statements = [
    {
      Sid = "ManageFunctions"
      Action = [
        "lambda:Get*",
        "lambda:List*",
        "lambda:DeleteFunction",
        "lambda:UpdateFunctionCode",
        "lambda:PublishVersion",
        "lambda:CreateAlias",
        "lambda:UpdateAlias",
        "lambda:DeleteAlias",
        "lambda:PutFunctionConcurrency",
        "lambda:DeleteFunctionConcurrency",
        "lambda:TagResource",
        "lambda:UntagResource",
      ]
      Resource = [local.fn_prefix_arn, "${local.fn_prefix_arn}:*"]
    },
    {
      # Create and configure only with our or trusted layers, as the deploy role.
      Sid       = "ConfigureFunctions"
      Action    = ["lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"]
      Resource  = [local.fn_prefix_arn]
      Condition = { "ForAllValues:StringLike" = { "lambda:Layer" = local.attachable_layers } }
    },
    {
      Sid      = "ManageLayer"
      Action   = ["lambda:PublishLayerVersion", "lambda:DeleteLayerVersion", "lambda:GetLayerVersion"]
      Resource = [local.layer_prefix, "${local.layer_prefix}:*"]
    },
    {
      Sid      = "ListLayers"
      Action   = ["lambda:ListLayers", "lambda:ListLayerVersions"]
      Resource = ["*"]
    },
    {
      Sid      = "ReadTrustedLayers"
      Action   = ["lambda:GetLayerVersion"]
      Resource = [for arn in var.trusted_layer_arns : "${arn}:*"]
    },
    {
      Sid = "ManageExecutionRoles"
      Action = [
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:GetRole",
        "iam:UpdateRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:TagRole",
        "iam:UntagRole",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:GetRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
      ]
      Resource = [local.role_prefix]
    },
    {
      Sid       = "PassExecutionRoles"
      Action    = ["iam:PassRole"]
      Resource  = [local.role_prefix]
      Condition = { StringEquals = { "iam:PassedToService" = "lambda.amazonaws.com" } }
    },
    {
      Sid      = "ReadOidcProvider"
      Action   = ["iam:GetOpenIDConnectProvider"]
      Resource = compact([local.oidc_provider_arn])
    },
    {
      Sid = "ManageLogGroups"
      Action = [
        "logs:CreateLogGroup",
        "logs:DeleteLogGroup",
        "logs:PutRetentionPolicy",
        "logs:DeleteRetentionPolicy",
        "logs:TagResource",
        "logs:UntagResource",
        "logs:TagLogGroup",
        "logs:ListTagsForResource",
        "logs:ListTagsLogGroup",
      ]
      Resource = [local.log_prefix, "${local.log_prefix}:*"]
    },
    {
      Sid      = "DescribeLogGroups"
      Action   = ["logs:DescribeLogGroups"]
      Resource = ["arn:aws:logs:${local.region}:${local.account}:log-group:*"]
    },
    {
      Sid = "ManageArtifactBucket"
      Action = [
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetBucket*",
        "s3:PutBucket*",
        "s3:DeleteBucketPolicy",
        "s3:GetEncryptionConfiguration",
        "s3:PutEncryptionConfiguration",
        "s3:GetLifecycleConfiguration",
        "s3:PutLifecycleConfiguration",
        "s3:GetAccelerateConfiguration",
        "s3:GetReplicationConfiguration",
      ]
      Resource = [var.artifact_bucket_arn]
    },
    {
      Sid      = "ManageBootstrapObject"
      Action   = ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:PutObject", "s3:DeleteObject"]
      Resource = ["${var.artifact_bucket_arn}/${var.artifact_prefix}*"]
    },
  ]

  # The shared remote cache (invoke.yaml remote_cache.bucket): read built layers, list their keys.
  layer_cache_statements = [for statement in [
    {
      Sid      = "ReadSharedLayerCache"
      Action   = ["s3:GetObject"]
      Resource = ["arn:aws:s3:::${var.layer_cache_bucket}/${var.artifact_prefix}layer-*"]
    },
    {
      Sid       = "ListSharedLayerCache"
      Action    = ["s3:ListBucket"]
      Resource  = ["arn:aws:s3:::${var.layer_cache_bucket}"]
      Condition = { StringLike = { "s3:prefix" = ["${var.artifact_prefix}layer-*"] } }
    },
  ] : statement if var.layer_cache_bucket != ""]

  # terraform output (deploy) reads the state; terraform apply (infra) also writes it and its S3
  # lock file; every writing task holds the deploy lock (deploy/aws/lock.py).
  state_object = var.state_bucket == null ? null : "arn:aws:s3:::${var.state_bucket}/env:/${var.environment}/${var.state_key}"
  # Every task's terraform init first checks the state bucket's settings (deploy/aws/state_bucket.py).
  state_list = var.state_bucket == null ? [] : [{
    Sid = "ListStateBucket"
    Action = [
      "s3:ListBucket",
      "s3:GetBucketVersioning",
      "s3:GetBucketPublicAccessBlock",
      "s3:GetEncryptionConfiguration",
      "s3:GetBucketPolicy",
    ]
    Resource = ["arn:aws:s3:::${var.state_bucket}"]
  }]
  deploy_state_statements = var.state_bucket == null ? [] : concat(local.state_list, [
    {
      Sid      = "ReadState"
      Action   = ["s3:GetObject"]
      Resource = [local.state_object]
    },
    {
      Sid      = "HoldDeployLock"
      Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
      Resource = ["${local.state_object}.deploy-lock"]
    },
  ])
  infra_state_statements = var.state_bucket == null ? [] : concat(local.state_list, [
    {
      # infra.apply runs first in the deploy job: it adds the deny-plain-HTTP statement to a
      # state bucket created before that statement existed.
      Sid      = "RequireTlsOnStateBucket"
      Action   = ["s3:PutBucketPolicy"]
      Resource = ["arn:aws:s3:::${var.state_bucket}"]
    },
    {
      Sid      = "ReadWriteState"
      Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
      Resource = [local.state_object, "${local.state_object}.tflock", "${local.state_object}.deploy-lock"]
    },
  ])

  trust_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "GitHubActionsOidc"
      Effect    = "Allow"
      Action    = "sts:AssumeRoleWithWebIdentity"
      Principal = { Federated = local.oidc_provider_arn }
      Condition = {
        StringEquals = {
          "${local.oidc_host}:aud" = "sts.amazonaws.com"
          "${local.oidc_host}:sub" = local.subject
        }
      }
    }]
  })

  # CI roles: readable for terraform refresh, never writable from CI.
  ci_role_read = ["iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"]
}

resource "aws_iam_openid_connect_provider" "this" {
  count = var.create_oidc_provider ? 1 : 0

  url            = "https://${local.oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
  # GitHub's published thumbprints; AWS no longer checks them for this issuer,
  # but older provider versions require the argument.
  thumbprint_list = [
    "6938fd4d98bab03faadb97b34396831e3780aea1",
    "1c58a3a8518e8759bf075b76b750d4f2df264fcd",
  ]
}

resource "aws_iam_role" "this" {
  name                 = var.role_name
  description          = "Assumed by GitHub Actions (${var.github_repository}, environment ${var.environment}) to deploy code and layers."
  max_session_duration = 3600
  assume_role_policy   = local.trust_policy

  lifecycle {
    precondition {
      condition     = local.oidc_provider_arn != null
      error_message = "Set create_oidc_provider = true or pass oidc_provider_arn."
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name = "${var.role_name}-deploy"
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      for s in concat(local.deploy_statements, local.deploy_state_statements, local.layer_cache_statements) : merge({ Effect = "Allow" }, s) if length(s.Resource) > 0
    ]
  })
}

resource "aws_iam_role" "infra" {
  name                 = var.infra_role_name
  description          = "Assumed by GitHub Actions (${var.github_repository}, environment ${var.environment}) to run terraform apply."
  max_session_duration = 3600
  assume_role_policy   = local.trust_policy

  lifecycle {
    precondition {
      condition     = local.oidc_provider_arn != null
      error_message = "Set create_oidc_provider = true or pass oidc_provider_arn."
    }
  }
}

resource "aws_iam_role_policy" "infra" {
  name = "${var.infra_role_name}-apply"
  role = aws_iam_role.infra.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [for s in concat(local.infra_statements, local.infra_state_statements) : merge({ Effect = "Allow" }, s) if length(s.Resource) > 0],
      [
        {
          Sid      = "ReadCiRoles"
          Effect   = "Allow"
          Action   = local.ci_role_read
          Resource = [aws_iam_role.this.arn, aws_iam_role.infra.arn]
        },
        {
          # The role-prefix grants above would otherwise cover the CI roles themselves: everything
          # but reading them is denied, whatever else grants it.
          Sid       = "NeverChangeCiRoles"
          Effect    = "Deny"
          NotAction = local.ci_role_read
          Resource  = [local.ci_role_prefix]
        },
      ],
    )
  })
}
