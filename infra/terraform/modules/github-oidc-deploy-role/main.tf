locals {
  oidc_host         = "token.actions.githubusercontent.com"
  oidc_provider_arn = var.create_oidc_provider ? try(aws_iam_openid_connect_provider.this[0].arn, null) : var.oidc_provider_arn

  # Only the main branch and the deployment environment of this env may assume the
  # role; pull requests and forks get no token that matches.
  subjects = [
    "repo:${var.github_repository}:ref:refs/heads/main",
    "repo:${var.github_repository}:environment:${var.environment}",
  ]

  qualified_function_arns = flatten([for arn in var.function_arns : [arn, "${arn}:*"]])

  statements = [
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
        "lambda:AddLayerVersionPermission",
        "lambda:RemoveLayerVersionPermission",
      ]
      Resource = ["${var.layer_arn}:*"]
    },
    {
      # IAM defines no resource type for listing layers: these two only take "*".
      Sid      = "ListLayers"
      Action   = ["lambda:ListLayers", "lambda:ListLayerVersions"]
      Resource = ["*"]
    },
    {
      Sid = "DeployFunctions"
      Action = [
        "lambda:GetFunction",
        "lambda:GetFunctionConfiguration",
        "lambda:GetFunctionCodeSigningConfig",
        "lambda:GetPolicy",
        "lambda:ListTags",
        "lambda:ListVersionsByFunction",
        "lambda:ListAliases",
        "lambda:GetAlias",
        "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
        "lambda:PublishVersion",
        "lambda:UpdateAlias",
        "lambda:InvokeFunction",
      ]
      Resource = local.qualified_function_arns
    },
    {
      Sid = "ReadArtifactBucket"
      Action = [
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetBucketLocation",
        "s3:GetBucketVersioning",
        "s3:GetBucketPublicAccessBlock",
        "s3:GetEncryptionConfiguration",
        "s3:GetBucketOwnershipControls",
        "s3:GetBucketPolicy",
        "s3:GetBucketAcl",
        "s3:GetBucketCORS",
        "s3:GetBucketWebsite",
        "s3:GetBucketLogging",
        "s3:GetBucketTagging",
        "s3:GetBucketRequestPayment",
        "s3:GetBucketObjectLockConfiguration",
        "s3:GetAccelerateConfiguration",
        "s3:GetLifecycleConfiguration",
        "s3:GetReplicationConfiguration",
      ]
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
      Sid = "ReadExecutionRoles"
      Action = [
        "iam:GetRole",
        "iam:GetRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
      ]
      Resource = var.execution_role_arns
    },
    {
      Sid      = "ReadOidcProvider"
      Action   = ["iam:GetOpenIDConnectProvider"]
      Resource = compact([local.oidc_provider_arn])
    },
    {
      # FilterLogEvents: verify's remote check reads recent logs for Runtime.ImportModuleError.
      Sid      = "ReadLogGroups"
      Action   = ["logs:DescribeLogGroups", "logs:ListTagsForResource", "logs:ListTagsLogGroup", "logs:FilterLogEvents"]
      Resource = flatten([for arn in var.log_group_arns : [arn, "${arn}:*"]])
    },
  ]

  # terraform refresh reads the deploy role itself; the state object, its S3 lock file, and the
  # deploy lock every writing task holds (deploy/aws/lock.py).
  state_object = var.state_bucket == null ? null : "arn:aws:s3:::${var.state_bucket}/env:/${var.environment}/${var.state_key}"
  extra_statements = var.state_bucket == null ? [] : [
    {
      Sid      = "ListStateBucket"
      Action   = ["s3:ListBucket", "s3:GetBucketVersioning", "s3:GetBucketPublicAccessBlock", "s3:GetEncryptionConfiguration"]
      Resource = ["arn:aws:s3:::${var.state_bucket}"]
    },
    {
      Sid      = "ReadWriteState"
      Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
      Resource = [local.state_object, "${local.state_object}.tflock", "${local.state_object}.deploy-lock"]
    },
  ]
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
  description          = "Assumed by GitHub Actions (${var.github_repository}) to deploy ${var.environment}."
  max_session_duration = 3600
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "GitHubActionsOidc"
      Effect    = "Allow"
      Action    = "sts:AssumeRoleWithWebIdentity"
      Principal = { Federated = local.oidc_provider_arn }
      Condition = {
        StringEquals = {
          "${local.oidc_host}:aud" = "sts.amazonaws.com"
          "${local.oidc_host}:sub" = local.subjects
        }
      }
    }]
  })

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
      for s in concat(local.statements, local.extra_statements, [{
        Sid      = "ReadThisRole"
        Action   = ["iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"]
        Resource = [aws_iam_role.this.arn]
      }]) : merge({ Effect = "Allow" }, s) if length(s.Resource) > 0
    ]
  })
}
