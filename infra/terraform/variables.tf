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
  description = "Endpoint URL of a local AWS emulator (moto), e.g. http://127.0.0.1:5000; null for real AWS. The deploy task passes it with -var."
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

variable "function_settings" {
  description = "Per-function memory (MB), timeout (s) and reserved concurrency (-1 = unreserved) overrides, keyed by api, cleanup, db_sync, eval_runbook_worker."
  type = map(object({
    memory_size          = optional(number)
    timeout              = optional(number)
    reserved_concurrency = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.function_settings) : contains(["api", "cleanup", "db_sync", "eval_runbook_worker"], k)])
    error_message = "function_settings keys must be api, cleanup, db_sync or eval_runbook_worker."
  }
}

variable "function_environment" {
  description = "Extra environment variables per function key (api, cleanup, db_sync, eval_runbook_worker)."
  type        = map(map(string))
  default     = {}
}

variable "database_url" {
  description = "DATABASE_URL given to the functions that use the database (api, db_sync, eval_runbook_worker)."
  type        = string
  default     = ""
  sensitive   = true
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

variable "deploy_config_digest" {
  description = "Set by the deploy tasks: sha256 of this configuration, its var-file and variables (deploy/terraform/fingerprint.py). Echoed as an output, so a fresh runner or `inv status` tells an applied configuration from a changed one without running a plan."
  type        = string
  default     = ""
}
