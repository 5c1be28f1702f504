locals {
  prefix      = "${var.name_prefix}-${var.environment}"
  bucket_name = "${var.name_prefix}-frontend-${var.environment}"
  layer_name  = "${local.prefix}-deps"

  # The functions come from var.functions (variables.tf); names and settings are derived here.
  # reserved_concurrency -1 leaves a function on the account's unreserved pool.
  functions = {
    for key, fn in var.functions : key => merge(fn, {
      name         = "${local.prefix}-${replace(key, "_", "-")}"
      runtime      = coalesce(fn.runtime, var.runtime)
      architecture = coalesce(fn.architecture, var.architecture)
      memory_size  = coalesce(try(var.function_settings[key].memory_size, null), fn.memory_size)
      timeout      = coalesce(try(var.function_settings[key].timeout, null), fn.timeout)
      # Lambda keeps 100 of the account's concurrency unreserved, so an account with a
      # low limit (new ones may start at 10) refuses any reservation: such an env sets
      # reserved_concurrency = -1 in function_settings.
      reserved_concurrency = coalesce(try(var.function_settings[key].reserved_concurrency, null), fn.reserved_concurrency)
    })
  }

  # ARNs computed from names rather than read from the modules: a function that invokes
  # another of the same module block would otherwise depend on itself.
  function_arns = {
    for key, fn in local.functions : key => "arn:${data.aws_partition.current.partition}:lambda:${var.aws_region}:${data.aws_caller_identity.current.account_id}:function:${fn.name}"
  }

  # What every function gets, then what its entry asks for: the database, the live alias
  # of each function it invokes, its own variables, and the env's extra variables.
  environments = {
    for key, fn in local.functions : key => merge(
      local.common_environment,
      fn.database ? local.database_environment : {},
      { for variable, target in fn.invokes : variable => "${local.function_arns[target]}:live" },
      fn.environment,
      lookup(var.function_environment, key, {}),
    )
  }

  # Invoking another function (and its versions/alias) is allowed only for the ones an entry's
  # `invokes` names, by ARN.
  invoke_statements = {
    for key, fn in local.functions : key => length(fn.invokes) == 0 ? [] : [{
      sid       = "InvokeFunctions"
      actions   = ["lambda:InvokeFunction"]
      resources = flatten([for target in sort(distinct(values(fn.invokes))) : [local.function_arns[target], "${local.function_arns[target]}:*"]])
      condition = []
    }]
  }

  common_environment = {
    ENVIRONMENT = var.environment
  }

  # The database URL is a secret: functions get the ARN of the secret holding it, never the
  # value, and read it at runtime (backend/app/db.py, once per container).
  database_keys        = sort([for key, fn in local.functions : key if fn.database])
  database_secret_arn  = try(aws_secretsmanager_secret.database_url[0].arn, null)
  database_environment = length(local.database_keys) == 0 ? {} : { DATABASE_URL_SECRET_ARN = local.database_secret_arn }

  # Reading the secret is allowed to the functions that get its ARN, on exactly that secret.
  secret_statements = {
    for key, fn in local.functions : key => fn.database ? [{
      sid       = "ReadDatabaseUrlSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.database_secret_arn]
      condition = []
    }] : []
  }
}

# The secret Terraform owns is the container, not the value: there is no
# aws_secretsmanager_secret_version, so the value is in no plan and no state, and an apply (CI's
# included, with any variables) neither sees nor changes it. An admin sets it once per env:
#   aws secretsmanager put-secret-value --secret-id <prefix>/database-url --secret-string 'postgresql://...'
# and rotates it the same way; the functions pick it up in new containers.
resource "aws_secretsmanager_secret" "database_url" {
  # checkov:skip=CKV_AWS_149: the aws/secretsmanager key encrypts it; a CMK would add a key policy the execution roles and the emulator need, and protect nothing the IAM grant on this one ARN does not.
  # checkov:skip=CKV2_AWS_57: the database's own credentials rotation lives with the database; rotation here needs a rotation function this stack does not run.
  count = length(local.database_keys) > 0 ? 1 : 0

  name = "${local.prefix}/database-url"
  # Fixed: changing a description needs UpdateSecret, which can also write a value, so the CI
  # infrastructure role is not granted it (modules/github-oidc-deploy-role).
  description             = "DATABASE_URL of the ${local.prefix} functions; the value is set out of band, never by Terraform."
  recovery_window_in_days = var.secret_recovery_window_days

  depends_on = [terraform_data.workspace_guard]
}

# State is kept per environment in a workspace named after it (the deploy task runs
# `terraform workspace select -or-create <env>`). Planning one env's variables
# against another env's state would rename or destroy everything, so refuse.
resource "terraform_data" "workspace_guard" {
  input = var.environment

  lifecycle {
    precondition {
      condition     = terraform.workspace == var.environment
      error_message = "Workspace \"${terraform.workspace}\" holds another environment's state, but environment = \"${var.environment}\". Run `terraform workspace select -or-create ${var.environment}` (the inv infra.* tasks do this)."
    }

    # The cleanup function deletes under its prefix: it must never reach the artifacts
    # the functions and the layer run from.
    precondition {
      condition     = !startswith(var.artifact_prefix, var.cleanup_prefix) && !startswith(var.cleanup_prefix, var.artifact_prefix)
      error_message = "cleanup_prefix \"${var.cleanup_prefix}\" overlaps artifact_prefix \"${var.artifact_prefix}\": the cleanup function could delete deployed artifacts."
    }
  }
}

# ---------------------------------------------------------------------------
# Artifact bucket (the frontend bucket of the plan; Lambda artifacts under lambda/)

resource "aws_s3_bucket" "artifacts" {
  # checkov:skip=CKV_AWS_145: SSE-S3 (AES256) below; build artifacts and the frontend are not secret, and SSE-KMS would add a key and KMS calls on every Lambda code fetch.
  # checkov:skip=CKV_AWS_144: everything here is rebuilt byte-identically from git (content-addressed keys), and Lambda keeps its own copy of deployed code; a replica adds nothing.
  # checkov:skip=CKV_AWS_18: only the deploy role writes and Lambda reads; server access logs would need a second, unlogged bucket per env for no consumer.
  # checkov:skip=CKV2_AWS_62: nothing reacts to object events here: the deploy tasks drive publish and attach themselves.
  bucket        = local.bucket_name
  force_destroy = var.artifact_bucket_force_destroy

  depends_on = [terraform_data.workspace_guard]
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# The remote layer cache shared across environments (invoke.yaml remote_cache.bucket): the
# listed accounts may read built layers (zip, manifest, SBOM) and list their keys, so a miss
# answers 404 rather than 403. Nothing else of the bucket, and no writes.
locals {
  layer_cache_readers = [for account in var.layer_cache_reader_accounts : "arn:aws:iam::${account}:root"]
  layer_cache_reader_statements = [for statement in [
    {
      Sid       = "LayerCacheReadersGetLayers"
      Effect    = "Allow"
      Principal = { AWS = local.layer_cache_readers }
      Action    = "s3:GetObject"
      Resource  = "${aws_s3_bucket.artifacts.arn}/${var.artifact_prefix}layer-*"
    },
    {
      Sid       = "LayerCacheReadersListLayers"
      Effect    = "Allow"
      Principal = { AWS = local.layer_cache_readers }
      Action    = "s3:ListBucket"
      Resource  = aws_s3_bucket.artifacts.arn
      Condition = { StringLike = { "s3:prefix" = "${var.artifact_prefix}layer-*" } }
    },
  ] : statement if length(local.layer_cache_readers) > 0]
}

# Plain HTTP is refused for every request: artifacts are what Lambda runs, and the deploy
# tasks, Lambda and the functions all speak TLS.
resource "aws_s3_bucket_policy" "artifacts" {
  # Not on the emulator: it speaks plain HTTP only, and moto enforces the policy (every request: 403).
  count  = local.emulated ? 0 : 1
  bucket = aws_s3_bucket.artifacts.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }], local.layer_cache_reader_statements)
  })

  # S3 refuses a policy while the public access block is being written.
  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

# Versioned so an artifact key is never silently overwritten under a running function.
resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Deploys never overwrite an artifact key (keys are content-addressed), so noncurrent
# versions only come from deletes (pruning, cleanup): keep them for a rollback window,
# then let S3 drop them. Lambda copies code on update, so no function runs from them.
resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  count  = var.artifact_lifecycle_enabled ? 1 : 0
  bucket = aws_s3_bucket.artifacts.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  rule {
    id     = "expire-noncurrent-lambda-artifacts"
    status = "Enabled"
    filter {
      prefix = var.artifact_prefix
    }
    noncurrent_version_expiration {
      noncurrent_days = var.artifact_noncurrent_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  # A lifecycle rule on a bucket without versioning would act on current objects.
  depends_on = [aws_s3_bucket_versioning.artifacts]
}

# ---------------------------------------------------------------------------
# The shared dependency layer and the functions of var.functions

module "layer" {
  source = "./modules/lambda-layer"

  layer_name               = local.layer_name
  description              = "Bootstrap version; inv deploy publishes the real dependencies."
  compatible_runtimes      = [var.runtime]
  compatible_architectures = [var.architecture]
  s3_bucket                = aws_s3_object.bootstrap.bucket
  s3_key                   = aws_s3_object.bootstrap.key
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# Functions of kind "cleanup" get their own module: it adds list/read/delete under
# cleanup_prefix of the artifact bucket, and nothing else.
module "cleanup" {
  source   = "./modules/cleanup-lambda"
  for_each = { for key, fn in local.functions : key => fn if fn.kind == "cleanup" }

  name                  = each.value.name
  description           = each.value.description
  handler               = each.value.handler
  runtime               = each.value.runtime
  architecture          = each.value.architecture
  layers                = [module.layer.version_arn]
  s3_bucket             = aws_s3_object.bootstrap.bucket
  s3_key                = aws_s3_object.bootstrap.key
  memory_size           = each.value.memory_size
  timeout               = each.value.timeout
  log_retention_days    = var.log_retention_days
  environment_variables = local.environments[each.key]
  policy_statements     = concat(local.invoke_statements[each.key], local.secret_statements[each.key])

  permissions_boundary           = local.execution_boundary
  reserved_concurrent_executions = each.value.reserved_concurrency
  snap_start                     = var.snap_start
  cleanup_bucket_name            = aws_s3_bucket.artifacts.bucket
  cleanup_bucket_arn             = aws_s3_bucket.artifacts.arn
  cleanup_prefix                 = var.cleanup_prefix
}

module "function" {
  # checkov:skip=CKV_AWS_115: concurrency is set per function in var.functions (reserved_concurrency): an HTTP API follows traffic and an SQS-fed worker is capped on its event source mapping, so a reservation would carve the shared pool or throttle batches.
  source   = "./modules/lambda"
  for_each = { for key, fn in local.functions : key => fn if fn.kind == "function" }

  name                  = each.value.name
  description           = each.value.description
  handler               = each.value.handler
  runtime               = each.value.runtime
  architecture          = each.value.architecture
  layers                = [module.layer.version_arn]
  s3_bucket             = aws_s3_object.bootstrap.bucket
  s3_key                = aws_s3_object.bootstrap.key
  memory_size           = each.value.memory_size
  timeout               = each.value.timeout
  log_retention_days    = var.log_retention_days
  environment_variables = local.environments[each.key]
  policy_statements     = concat(local.invoke_statements[each.key], local.secret_statements[each.key])

  permissions_boundary           = local.execution_boundary
  reserved_concurrent_executions = each.value.reserved_concurrency
  snap_start                     = var.snap_start
}

# The four functions had a module block each before var.functions; these keep their
# resources (and so their versions and live aliases) where an existing state has them.
moved {
  from = module.api
  to   = module.function["api"]
}

moved {
  from = module.db_sync
  to   = module.function["db_sync"]
}

moved {
  from = module.eval_runbook_worker
  to   = module.function["eval_runbook_worker"]
}

moved {
  from = module.cleanup
  to   = module.cleanup["cleanup"]
}

locals {
  # With CI roles, every execution role carries the boundary they are created under.
  execution_boundary = try(module.github_oidc[0].execution_boundary_arn, null)

  function_modules = merge(module.function, module.cleanup)
}

# ---------------------------------------------------------------------------
# CI: the role GitHub Actions assumes to deploy this environment (issue "CI")

module "github_oidc" {
  source = "./modules/github-oidc-deploy-role"
  count  = var.github_repository != "" ? 1 : 0

  github_repository    = var.github_repository
  environment          = var.environment
  role_name            = "${local.prefix}-github-deploy"
  infra_role_name      = "${local.prefix}-github-infra"
  name_prefix          = local.prefix
  create_oidc_provider = var.create_github_oidc_provider
  oidc_provider_arn    = var.github_oidc_provider_arn
  layer_arn            = module.layer.layer_arn
  function_arns        = values(local.function_arns)
  artifact_bucket_arn  = aws_s3_bucket.artifacts.arn
  artifact_prefix      = var.artifact_prefix
  execution_role_arns  = [for m in values(local.function_modules) : m.role.arn]
  log_group_arns       = [for m in values(local.function_modules) : m.log_group_arn]
  state_bucket         = var.state_bucket
  state_key            = var.state_key

  trusted_layer_arns    = var.trusted_layer_arns
  share_account_ids     = var.share_account_ids
  share_organization_id = var.share_organization_id
  pin_job_workflow_ref  = var.pin_job_workflow_ref
  layer_cache_bucket    = var.layer_cache_bucket
  secret_arns           = compact([local.database_secret_arn])

  layer_cache_publisher_arn = var.layer_cache_publisher_arn
}
