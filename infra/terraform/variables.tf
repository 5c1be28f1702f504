variable "environment" {
  description = "Environment name (local, staging, production); must equal the Terraform workspace."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.environment))
    error_message = "environment must be lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name: <prefix>-<env>-<function>."
  type        = string
  default     = "bluemoxon"
}

variable "aws_region" {
  description = "AWS region of the environment."
  type        = string
  default     = "us-east-1"
}

variable "aws_endpoint" {
  description = "Endpoint URL of a local AWS emulator (moto), e.g. http://127.0.0.1:5000; null for real AWS. The deploy task passes it with -var, and the same URL to the provider as AWS_ENDPOINT_URL (see providers.tf); set alone, it only switches to the emulator's dummy credentials."
  type        = string
  default     = null
}

variable "runtime" {
  description = "Lambda runtime of the functions and the layer."
  type        = string
  default     = "python3.12"

  validation {
    condition     = can(regex("^python3\\.[0-9]+$", var.runtime))
    error_message = "runtime must be a Python runtime such as python3.12."
  }
}

variable "snap_start" {
  description = "Lambda SnapStart on every function's published versions; set by the deploy tasks from invoke.yaml snap_start (python3.12 and later)."
  type        = bool
  default     = false
}

variable "architecture" {
  description = "Instruction set architecture of the functions and the layer."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "artifact_prefix" {
  description = "Key prefix of the Lambda artifacts in the artifact bucket."
  type        = string
  default     = "lambda/"

  validation {
    condition     = endswith(var.artifact_prefix, "/") && !strcontains(var.artifact_prefix, "*")
    error_message = "artifact_prefix must end with \"/\" and contain no wildcard."
  }
}

variable "artifact_bucket_force_destroy" {
  description = "Whether destroying the environment may delete a non-empty artifact bucket (true only for throwaway envs)."
  type        = bool
  default     = false
}

variable "artifact_lifecycle_enabled" {
  description = "Manage the artifact bucket's lifecycle rules. On create the AWS provider waits about a minute for them to read back stable, which a disposable emulator need not pay."
  type        = bool
  default     = true
}

variable "artifact_noncurrent_days" {
  description = "Days S3 keeps a deleted or replaced artifact's old version (the rollback window) before expiring it."
  type        = number
  default     = 30

  validation {
    condition     = var.artifact_noncurrent_days >= 1 && floor(var.artifact_noncurrent_days) == var.artifact_noncurrent_days
    error_message = "artifact_noncurrent_days must be a whole number of days, 1 or more."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups, in days."
  type        = number
  default     = 30
}

# The one place the functions are declared: the modules iterate this map, deploy_targets
# outputs its entries, and the deploy tasks take whatever it lists (README: "Add a function").
variable "functions" {
  description = <<-EOT
    The functions, by key (lowercase letters, digits, underscores; the Lambda function is
    <name_prefix>-<environment>-<key with dashes>). Each entry:
      handler      module.attribute, relative to the root of the code zip (backend/)
      sources      paths under backend/ its code needs (folders or files); the code zip holds
                   the union of every function's sources, and the handler's module must be in its own
      description, memory_size (MB), timeout (s), reserved_concurrency (-1: unreserved pool)
      environment  its own environment variables
      runtime, architecture  overrides of var.runtime and var.architecture
      database     true: gets DATABASE_URL_SECRET_ARN, the ARN of the database URL's secret,
                   and may read that secret (its value is set out of band, never by Terraform)
      invokes      environment variable => key of a function it may invoke; the variable holds
                   that function's live alias ARN, and its role may invoke only those
      kind         "function", or "cleanup": may list, read and delete under cleanup_prefix
                   of the artifact bucket (modules/cleanup-lambda)
  EOT
  type = map(object({
    handler              = string
    sources              = list(string)
    description          = optional(string, "")
    memory_size          = optional(number, 256)
    timeout              = optional(number, 30)
    reserved_concurrency = optional(number, -1)
    environment          = optional(map(string), {})
    runtime              = optional(string)
    architecture         = optional(string)
    database             = optional(bool, false)
    invokes              = optional(map(string), {})
    kind                 = optional(string, "function")
  }))

  default = {
    api = {
      handler     = "app.main.handler"
      sources     = ["app"]
      description = "HTTP API."
      memory_size = 512
      timeout     = 30
      database    = true
      # Admin cleanups run what `live` serves, even mid-deploy or after a rollback.
      invokes = { CLEANUP_FUNCTION_NAME = "cleanup" }
      # Follows traffic: a reservation would cap requests and carve the shared pool.
      reserved_concurrency = -1
    }
    cleanup = {
      handler     = "lambdas.cleanup.handler.handler"
      sources     = ["app", "lambdas/__init__.py", "lambdas/cleanup"]
      description = "Deletes stale objects under one bucket prefix."
      kind        = "cleanup"
      memory_size = 256
      timeout     = 300
      # Two sweeps at once would only race on the same deletes.
      reserved_concurrency = 1
    }
    db_sync = {
      handler     = "lambdas.db_sync.handler.handler"
      sources     = ["app", "lambdas/__init__.py", "lambdas/db_sync"]
      description = "Database synchronisation job."
      memory_size = 512
      timeout     = 900
      database    = true
      # Each run upserts the same tables in one transaction: concurrent runs would
      # contend on the same rows, so a second invoke is throttled instead.
      reserved_concurrency = 1
    }
    eval_runbook_worker = {
      handler     = "lambdas.eval_runbook_worker.handler.handler"
      sources     = ["lambdas/__init__.py", "lambdas/eval_runbook_worker"]
      description = "Evaluation runbook worker."
      memory_size = 1024
      timeout     = 900
      database    = true
      # Fed by SQS: its event source mapping's maximum_concurrency is the cap; a
      # reservation under a poller throttles batches back onto the queue.
      reserved_concurrency = -1
    }
  }

  validation {
    condition     = length(var.functions) > 0
    error_message = "functions must declare at least one function."
  }

  validation {
    condition     = alltrue([for key in keys(var.functions) : can(regex("^[a-z][a-z0-9_]{0,39}$", key))])
    error_message = "functions: each key must be lowercase letters, digits and underscores, starting with a letter (at most 40 characters), got ${jsonencode(keys(var.functions))}."
  }

  validation {
    condition     = alltrue([for fn in values(var.functions) : can(regex("^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+$", fn.handler))])
    error_message = "functions: each handler must be module.attribute (e.g. app.main.handler)."
  }

  validation {
    condition = alltrue(flatten([for fn in values(var.functions) : concat([length(fn.sources) > 0], [
      for s in fn.sources : s != "" && !startswith(s, "/") && !contains(split("/", s), "..") && !contains(split("/", s), ".")
    ])]))
    error_message = "functions: each function needs sources, each a path relative to backend/ (no leading /, no . or .. parts)."
  }

  validation {
    # The handler's module (a.b.c -> a/b/c) must lie in one of the function's own sources.
    condition = alltrue([for key, fn in var.functions : anytrue([
      for s in fn.sources : (
        join("/", slice(split(".", fn.handler), 0, length(split(".", fn.handler)) - 1)) == trimsuffix(trimsuffix(s, "/"), ".py") ||
        startswith(join("/", slice(split(".", fn.handler), 0, length(split(".", fn.handler)) - 1)), "${trimsuffix(s, "/")}/")
      )
    ])])
    error_message = "functions: a handler lies outside its function's sources: ${jsonencode({ for key, fn in var.functions : key => { handler = fn.handler, sources = fn.sources } })}."
  }

  validation {
    condition     = alltrue([for fn in values(var.functions) : contains(["function", "cleanup"], fn.kind)])
    error_message = "functions: kind must be \"function\" or \"cleanup\"."
  }

  validation {
    condition     = alltrue(flatten([for fn in values(var.functions) : [for target in values(fn.invokes) : contains(keys(var.functions), target)]]))
    error_message = "functions: invokes must name keys of functions (${join(", ", keys(var.functions))})."
  }

  validation {
    condition = alltrue([for fn in values(var.functions) : (
      (fn.runtime == null || can(regex("^python3\\.[0-9]+$", fn.runtime))) &&
      (fn.architecture == null || contains(["x86_64", "arm64"], coalesce(fn.architecture, "x86_64")))
    )])
    error_message = "functions: runtime must be a Python runtime such as python3.12 and architecture x86_64 or arm64."
  }
}

variable "function_settings" {
  description = "Per-environment memory (MB), timeout (s) and reserved concurrency (-1 = unreserved) overrides, keyed by function (keys of var.functions)."
  type = map(object({
    memory_size          = optional(number)
    timeout              = optional(number)
    reserved_concurrency = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.function_settings) : contains(keys(var.functions), k)])
    error_message = "function_settings keys must be keys of var.functions (${join(", ", keys(var.functions))})."
  }
}

variable "function_environment" {
  description = "Extra environment variables per function key (keys of var.functions), per environment."
  type        = map(map(string))
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.function_environment) : contains(keys(var.functions), k)])
    error_message = "function_environment keys must be keys of var.functions (${join(", ", keys(var.functions))})."
  }
}

# Kept only to refuse a value: the URL moved to Secrets Manager (aws_secretsmanager_secret.database_url),
# and a stale TF_VAR_database_url or tfvars line must fail loudly, not be ignored while the
# functions read another value. Ephemeral: even a refused value is written to no plan or state.
variable "database_url" {
  description = "Removed: DATABASE_URL lives in the Secrets Manager secret <prefix>-<env>/database-url. Must stay unset."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = var.database_url == null
    error_message = "database_url is no longer a Terraform variable: the value would sit in plan files and reach the functions as a plain environment variable. Unset it (TF_VAR_database_url, the tfvars line) and store the URL once with `aws secretsmanager put-secret-value --secret-id <name_prefix>-<environment>/database-url --secret-string ...`."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored (7-30), or 0 to delete at once (only for a throwaway env such as the emulator, which would otherwise refuse to re-create the name)."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or 7-30 (Secrets Manager's range)."
  }
}

variable "cleanup_prefix" {
  description = "Key prefix of the artifact bucket the cleanup function may list, read and delete under; must not overlap artifact_prefix."
  type        = string
  default     = "tmp/"
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflows deploy this env; empty disables the CI deploy role."
  type        = string
  default     = ""
}

variable "create_github_oidc_provider" {
  description = "Whether this env creates the account's GitHub OIDC provider (false when another env in the same account already did)."
  type        = bool
  default     = true
}

variable "github_oidc_provider_arn" {
  description = "Existing GitHub OIDC provider ARN, used when create_github_oidc_provider is false."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "state_bucket" {
  description = "The S3 bucket of this environment's Terraform state; passed by the tasks from invoke.yaml (state.bucket) so the CI role may read and write it."
  type        = string
  default     = null
}

variable "state_key" {
  description = "The key of the state object in state_bucket; passed by the tasks from invoke.yaml (state.key)."
  type        = string
  default     = "terraform.tfstate"
}

variable "trusted_layer_arns" {
  description = "Unversioned ARNs of layers not ours the CI roles may attach; passed by the tasks from invoke.yaml (verify.trusted_layers)."
  type        = list(string)
  default     = []
}

variable "share_account_ids" {
  description = "Accounts the CI deploy role may share layer versions with; passed by the tasks from invoke.yaml (share.accounts)."
  type        = list(string)
  default     = []
}

variable "share_organization_id" {
  description = "Organization the CI deploy role may share layer versions with; passed by the tasks from invoke.yaml (share.organization_id); null for none."
  type        = string
  default     = null
}

variable "pin_job_workflow_ref" {
  description = "Pin the CI roles' OIDC subject to the deploy workflow on main (needs the repository's OIDC subject template with repo, context, job_workflow_ref)."
  type        = bool
  default     = true
}

variable "layer_cache_reader_accounts" {
  description = "Accounts whose deploys may read this environment's built layers as their remote cache (e.g. production's account on staging), so production runs the bytes staging verified."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.layer_cache_reader_accounts : can(regex("^[0-9]{12}$", a))])
    error_message = "layer_cache_reader_accounts takes 12-digit AWS account IDs."
  }
}

variable "layer_cache_bucket" {
  description = "Another environment's artifact bucket this environment's CI deploy role may read layers from (keep equal to invoke.yaml remote_cache.bucket); empty for none."
  type        = string
  default     = ""
}

variable "layer_cache_publisher_arn" {
  description = "The layer (ARN without a version) whose versions vouch for the shared cache's bytes; this environment's CI deploy role may read them (set from invoke.yaml remote_cache.publisher); empty for none."
  type        = string
  default     = ""
}

variable "deploy_config_digest" {
  description = "Set by the deploy tasks: sha256 of this configuration, its var-file and variables (deploy/terraform/fingerprint.py). Echoed as an output, so a fresh runner or `inv status` tells an applied configuration from a changed one without running a plan."
  type        = string
  default     = ""
}
