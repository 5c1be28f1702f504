locals {
  prefix      = "${var.name_prefix}-${var.environment}"
  bucket_name = "${var.name_prefix}-frontend-${var.environment}"
  layer_name  = "${local.prefix}-deps"

  # One entry per function: the logical key the tasks use, the handler relative to
  # backend/ (the root of the code zip) and sizing defaults. reserved_concurrency -1
  # leaves a function on the account's unreserved pool; 1 runs it one at a time.
  functions = {
    api = {
      name        = "${local.prefix}-api"
      handler     = "app.main.handler"
      memory_size = 512
      timeout     = 30
      # Follows traffic: a reservation would cap requests and carve the shared pool.
      reserved_concurrency = -1
    }
    cleanup = {
      name        = "${local.prefix}-cleanup"
      handler     = "lambdas.cleanup.handler.handler"
      memory_size = 256
      timeout     = 300
      # Two sweeps at once would only race on the same deletes.
      reserved_concurrency = 1
    }
    db_sync = {
      name        = "${local.prefix}-db-sync"
      handler     = "lambdas.db_sync.handler.handler"
      memory_size = 512
      timeout     = 900
      # Each run upserts the same tables in one transaction: concurrent runs would
      # contend on the same rows, so a second invoke is throttled instead.
      reserved_concurrency = 1
    }
    eval_runbook_worker = {
      name        = "${local.prefix}-eval-runbook-worker"
      handler     = "lambdas.eval_runbook_worker.handler.handler"
      memory_size = 1024
      timeout     = 900
      # Fed by SQS: its event source mapping's maximum_concurrency is the cap; a
      # reservation under a poller throttles batches back onto the queue.
      reserved_concurrency = -1
    }
  }

  settings = {
    for key, fn in local.functions : key => {
      memory_size = coalesce(try(var.function_settings[key].memory_size, null), fn.memory_size)
      timeout     = coalesce(try(var.function_settings[key].timeout, null), fn.timeout)
      # Lambda keeps 100 of the account's concurrency unreserved, so an account with a
      # low limit (new ones may start at 10) refuses any reservation: such an env sets
      # reserved_concurrency = -1 in function_settings.
      reserved_concurrency = coalesce(try(var.function_settings[key].reserved_concurrency, null), fn.reserved_concurrency)
    }
  }

  common_environment = {
    ENVIRONMENT = var.environment
  }
  database_environment = var.database_url == "" ? {} : { DATABASE_URL = var.database_url }
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
# The shared dependency layer and the four functions

module "layer" {
  source = "./modules/lambda-layer"

  layer_name               = local.layer_name
  description              = "Bootstrap version; inv deploy publishes the real dependencies."
  compatible_runtimes      = [var.runtime]
  compatible_architectures = [var.architecture]
  s3_bucket                = aws_s3_object.bootstrap.bucket
  s3_key                   = aws_s3_object.bootstrap.key
}

module "cleanup" {
  source = "./modules/cleanup-lambda"

  name                  = local.functions.cleanup.name
  handler               = local.functions.cleanup.handler
  runtime               = var.runtime
  architecture          = var.architecture
  layers                = [module.layer.version_arn]
  s3_bucket             = aws_s3_object.bootstrap.bucket
  s3_key                = aws_s3_object.bootstrap.key
  memory_size           = local.settings.cleanup.memory_size
  timeout               = local.settings.cleanup.timeout
  log_retention_days    = var.log_retention_days
  environment_variables = merge(local.common_environment, lookup(var.function_environment, "cleanup", {}))

  permissions_boundary           = local.execution_boundary
  reserved_concurrent_executions = local.settings.cleanup.reserved_concurrency
  cleanup_bucket_name            = aws_s3_bucket.artifacts.bucket
  cleanup_bucket_arn             = aws_s3_bucket.artifacts.arn
  cleanup_prefix                 = var.cleanup_prefix
}

module "api" {
  # checkov:skip=CKV_AWS_115: the HTTP API's concurrency follows traffic; a reservation would cap user requests and carve the pool the other functions share (set one per env via function_settings).
  source = "./modules/lambda"

  name               = local.functions.api.name
  description        = "HTTP API."
  handler            = local.functions.api.handler
  runtime            = var.runtime
  architecture       = var.architecture
  layers             = [module.layer.version_arn]
  s3_bucket          = aws_s3_object.bootstrap.bucket
  s3_key             = aws_s3_object.bootstrap.key
  memory_size        = local.settings.api.memory_size
  timeout            = local.settings.api.timeout
  log_retention_days = var.log_retention_days

  permissions_boundary           = local.execution_boundary
  reserved_concurrent_executions = local.settings.api.reserved_concurrency

  environment_variables = merge(
    local.common_environment,
    local.database_environment,
    # The alias, not $LATEST: admin cleanups run what `live` serves, even mid-deploy or after a rollback.
    { CLEANUP_FUNCTION_NAME = module.cleanup.alias_arn },
    lookup(var.function_environment, "api", {}),
  )

  # The admin API runs cleanups (RequestResponse): it may invoke that one function (and its
  # versions/alias), by the ARN the cleanup module reports.
  policy_statements = [{
    sid       = "InvokeCleanup"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.cleanup.function_arn, "${module.cleanup.function_arn}:*"]
  }]
}

module "db_sync" {
  source = "./modules/lambda"

  name                  = local.functions.db_sync.name
  description           = "Database synchronisation job."
  handler               = local.functions.db_sync.handler
  runtime               = var.runtime
  architecture          = var.architecture
  layers                = [module.layer.version_arn]
  s3_bucket             = aws_s3_object.bootstrap.bucket
  s3_key                = aws_s3_object.bootstrap.key
  memory_size           = local.settings.db_sync.memory_size
  timeout               = local.settings.db_sync.timeout
  log_retention_days    = var.log_retention_days
  environment_variables = merge(local.common_environment, local.database_environment, lookup(var.function_environment, "db_sync", {}))

  permissions_boundary           = local.execution_boundary
  reserved_concurrent_executions = local.settings.db_sync.reserved_concurrency
}

module "eval_runbook_worker" {
  # checkov:skip=CKV_AWS_115: SQS-fed; the cap belongs on the event source mapping (maximum_concurrency), since reserved concurrency under an SQS poller throttles batches back to the queue.
  source = "./modules/lambda"

  name                  = local.functions.eval_runbook_worker.name
  description           = "Evaluation runbook worker."
  handler               = local.functions.eval_runbook_worker.handler
  runtime               = var.runtime
  architecture          = var.architecture
  layers                = [module.layer.version_arn]
  s3_bucket             = aws_s3_object.bootstrap.bucket
  s3_key                = aws_s3_object.bootstrap.key
  memory_size           = local.settings.eval_runbook_worker.memory_size
  timeout               = local.settings.eval_runbook_worker.timeout
  log_retention_days    = var.log_retention_days
  environment_variables = merge(local.common_environment, local.database_environment, lookup(var.function_environment, "eval_runbook_worker", {}))

  permissions_boundary           = local.execution_boundary
  reserved_concurrent_executions = local.settings.eval_runbook_worker.reserved_concurrency
}

locals {
  # With CI roles, every execution role carries the boundary they are created under.
  execution_boundary = try(module.github_oidc[0].execution_boundary_arn, null)

  function_modules = {
    api                 = module.api
    cleanup             = module.cleanup
    db_sync             = module.db_sync
    eval_runbook_worker = module.eval_runbook_worker
  }
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
  function_arns        = [for m in values(local.function_modules) : m.function_arn]
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
}
