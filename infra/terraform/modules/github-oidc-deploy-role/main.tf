locals {
  oidc_host         = "token.actions.githubusercontent.com"
  oidc_provider_arn = var.create_oidc_provider ? try(aws_iam_openid_connect_provider.this[0].arn, null) : var.oidc_provider_arn

  # Each role trusts one job: the deploy role a job in the env's GitHub environment (behind its
  # protection rules: production's reviewers), the infrastructure role a job in the env's infra
  # environment (`<env>-infra` by default), so neither job can assume the other's role. A job on
  # main without an environment gets a `ref:refs/heads/main` subject, which matches nothing here.
  # IAM cannot read custom claims such as job_workflow_ref, but GitHub puts it into the subject
  # when the repository's OIDC subject template lists repo, context and job_workflow_ref: then the
  # subject also pins the deploy workflow on main (on by default; off only for a repository that
  # cannot change its template).
  infra_environment = coalesce(var.infra_environment, "${var.environment}-infra")
  workflow_pin      = "job_workflow_ref:${var.github_repository}/${var.deploy_workflow}@refs/heads/main"
  deploy_subject = join(":", concat(
    ["repo:${var.github_repository}:environment:${var.environment}"],
    var.pin_job_workflow_ref ? [local.workflow_pin] : [],
  ))
  infra_subject = join(":", concat(
    ["repo:${var.github_repository}:environment:${local.infra_environment}"],
    var.pin_job_workflow_ref ? [local.workflow_pin] : [],
  ))

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
      # Attach sets the layers; IAM checks every layer of the request (ForAllValues). ForAllValues
      # holds for a request with no Layers at all (nothing to check), which would let this role
      # change a function's handler, environment or memory: the Null test refuses such a call.
      Sid      = "AttachOurLayers"
      Action   = ["lambda:UpdateFunctionConfiguration"]
      Resource = var.function_arns
      Condition = {
        "ForAllValues:StringLike" = { "lambda:Layer" = local.attachable_layers }
        Null                      = { "lambda:Layer" = "false" }
      }
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
      # The preflight checks that every secret a function references exists (deploy/aws/secrets.py);
      # DescribeSecret never returns a value.
      Sid      = "DescribeSecrets"
      Action   = ["secretsmanager:DescribeSecret"]
      Resource = var.secret_arns
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
  ci_role_arns   = ["arn:aws:iam::${local.account}:role/${var.role_name}", "arn:aws:iam::${local.account}:role/${var.infra_role_name}"]

  # The permissions boundary of every role the infrastructure role creates (the functions'
  # execution roles): the most any of them may do. Computed, not read from the resource, so the
  # infrastructure policy and its tests see the exact ARN at plan time.
  boundary_name = "${var.name_prefix}-execution-boundary"
  boundary_arn  = "arn:aws:iam::${local.account}:policy/${local.boundary_name}"
  # Every role action IAM can condition on iam:PermissionsBoundary (the boundary the role has, or
  # gets); AttachRolePolicy and DetachRolePolicy are granted to nobody, but denied without it too.
  boundary_keyed_actions = ["iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary"]
  boundary_read          = ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"]
  log_prefix             = "arn:aws:logs:${local.region}:${local.account}:log-group:/aws/lambda/${var.name_prefix}-*"
  # The stack's secrets are named <name_prefix>/...; Secrets Manager appends "-" and 6 characters.
  secret_prefix = "arn:aws:secretsmanager:${local.region}:${local.account}:secret:${var.name_prefix}/*"
  # What reads or writes a secret's value. Neither CI role holds any of these (the infrastructure
  # role is denied them below), so no apply, whatever its variables, can read, replace or erase
  # a value: Terraform manages the secret, an admin its value. UpdateSecret is here because it
  # also takes a SecretString.
  secret_value_actions = [
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:BatchGetSecretValue",
  ]

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
      # IAM offers no permissions-boundary condition key for these: they cannot widen what a role
      # may do (its policies and boundary are set only by the statement below).
      Sid = "ManageExecutionRoles"
      Action = [
        "iam:DeleteRole",
        "iam:GetRole",
        "iam:UpdateRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:TagRole",
        "iam:UntagRole",
        "iam:GetRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
      ]
      Resource = [local.role_prefix]
    },
    {
      # A role is created, and its inline policies written, only under the boundary Terraform
      # defines here: whatever policy the role gets, it can do no more than the boundary allows.
      Sid       = "ChangeRolesUnderTheBoundary"
      Action    = local.boundary_keyed_actions
      Resource  = [local.role_prefix]
      Condition = { StringEquals = { "iam:PermissionsBoundary" = local.boundary_arn } }
    },
    {
      Sid      = "ReadTheBoundary"
      Action   = local.boundary_read
      Resource = [local.boundary_arn]
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
      Sid = "ManageSecrets"
      Action = [
        "secretsmanager:CreateSecret",
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetResourcePolicy",
        "secretsmanager:TagResource",
        "secretsmanager:UntagResource",
      ]
      Resource = [local.secret_prefix]
    },
    {
      # Removing a secret from the configuration schedules its deletion: restorable for the
      # recovery window, never deleted at once by CI.
      Sid       = "DeleteSecretsRecoverably"
      Action    = ["secretsmanager:DeleteSecret"]
      Resource  = [local.secret_prefix]
      Condition = { NumericGreaterThanEqual = { "secretsmanager:RecoveryWindowInDays" = "7" } }
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

  # The layer whose versions vouch for the shared cache's bytes (invoke.yaml remote_cache.publisher):
  # the deploy compares a fetched zip with the CodeSha256 of the version published with its identity.
  # ListLayerVersions is already granted on "*" (ListLayers); another account must also grant
  # lambda:GetLayerVersion on its versions (share.accounts there), since IAM needs both sides.
  layer_cache_publisher_statements = [for statement in [
    {
      Sid      = "ReadCachePublisherLayer"
      Action   = ["lambda:GetLayerVersion"]
      Resource = ["${var.layer_cache_publisher_arn}:*"]
    },
  ] : statement if var.layer_cache_publisher_arn != ""]

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

  trust_policies = { for role, subject in { deploy = local.deploy_subject, infra = local.infra_subject } : role => jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "GitHubActionsOidc"
      Effect    = "Allow"
      Action    = "sts:AssumeRoleWithWebIdentity"
      Principal = { Federated = local.oidc_provider_arn }
      Condition = {
        StringEquals = {
          "${local.oidc_host}:aud" = "sts.amazonaws.com"
          "${local.oidc_host}:sub" = subject
        }
      }
    }]
  }) }

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
  assume_role_policy   = local.trust_policies.deploy

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
      for s in concat(local.deploy_statements, local.deploy_state_statements, local.layer_cache_statements, local.layer_cache_publisher_statements) : merge({ Effect = "Allow" }, s) if length(s.Resource) > 0
    ]
  })
}

resource "aws_iam_role" "infra" {
  name                 = var.infra_role_name
  description          = "Assumed by GitHub Actions (${var.github_repository}, environment ${local.infra_environment}) to run terraform apply."
  max_session_duration = 3600
  assume_role_policy   = local.trust_policies.infra

  lifecycle {
    precondition {
      condition     = local.oidc_provider_arn != null
      error_message = "Set create_oidc_provider = true or pass oidc_provider_arn."
    }
    precondition {
      condition     = local.infra_environment != var.environment
      error_message = "infra_environment must differ from environment: one OIDC subject per role, so the deploy job cannot assume the infrastructure role."
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
          # Explicit, so no future Allow can undo it: without this boundary (none, or another
          # one) no role is created and no role policy written, attached or removed.
          Sid       = "NoRoleChangeWithoutTheBoundary"
          Effect    = "Deny"
          Action    = concat(local.boundary_keyed_actions, ["iam:AttachRolePolicy", "iam:DetachRolePolicy"])
          Resource  = ["*"]
          Condition = { StringNotEquals = { "iam:PermissionsBoundary" = local.boundary_arn } }
        },
        {
          Sid      = "NeverTouchSecretValues"
          Effect   = "Deny"
          Action   = local.secret_value_actions
          Resource = ["*"]
        },
        {
          Sid      = "NeverRemoveABoundary"
          Effect   = "Deny"
          Action   = ["iam:DeleteRolePermissionsBoundary"]
          Resource = ["*"]
        },
        {
          # The boundary is changed from an admin's machine, like the CI roles.
          Sid       = "NeverChangeTheBoundary"
          Effect    = "Deny"
          NotAction = local.boundary_read
          Resource  = [local.boundary_arn]
        },
        {
          # The role-prefix grants above would otherwise cover the CI roles themselves: everything
          # but reading them is denied, whatever else grants it (by prefix and by name, in case a
          # role name leaves the prefix).
          Sid       = "NeverChangeCiRoles"
          Effect    = "Deny"
          NotAction = local.ci_role_read
          Resource  = concat([local.ci_role_prefix], local.ci_role_arns)
        },
      ],
    )
  })
}

# The boundary of the execution roles: what the functions of this stack do (write their logs and
# traces, invoke each other, read and clean the artifact bucket, read their secrets) plus
# boundary_statements; no IAM.
resource "aws_iam_policy" "boundary" {
  name        = local.boundary_name
  description = "Permissions boundary of the ${var.name_prefix} execution roles; the CI infrastructure role creates roles only under it."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [for s in concat([
      {
        Sid      = "WriteOwnLogs"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = ["${local.log_prefix}:*"]
      },
      {
        # X-Ray has no resource-level permissions for these two actions: "*" is the only ARN.
        Sid      = "WriteTraces"
        Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
        Resource = ["*"]
      },
      {
        Sid      = "InvokeOwnFunctions"
        Action   = ["lambda:InvokeFunction"]
        Resource = [local.fn_prefix_arn, "${local.fn_prefix_arn}:*"]
      },
      {
        Sid      = "CleanArtifactBucket"
        Action   = ["s3:ListBucket", "s3:GetObject", "s3:DeleteObject"]
        Resource = [var.artifact_bucket_arn, "${var.artifact_bucket_arn}/*"]
      },
      {
        # The functions read their secrets (the database URL) at runtime; exactly these ARNs.
        Sid      = "ReadOwnSecrets"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = var.secret_arns
      },
      ], [for b in var.boundary_statements : { Sid = b.sid, Action = b.actions, Resource = b.resources }]) : merge({ Effect = "Allow" }, s) if length(s.Resource) > 0
    ]
  })
}
