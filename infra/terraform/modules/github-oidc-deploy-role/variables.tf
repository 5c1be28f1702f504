variable "github_repository" {
  description = "GitHub repository as owner/name whose workflows may deploy."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "environment" {
  description = "Deployment environment; also the GitHub environment name allowed to assume the role."
  type        = string
}

variable "role_name" {
  description = "Name of the deploy role."
  type        = string
}

variable "create_oidc_provider" {
  description = "Whether to create the GitHub OIDC provider (one per account); when false, oidc_provider_arn is used."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "Existing GitHub OIDC provider ARN, used when create_oidc_provider is false."
  type        = string
  default     = null
}

variable "layer_arn" {
  description = "Unversioned ARN of the dependency layer the role publishes versions of."
  type        = string
}

variable "function_arns" {
  description = "Unqualified ARNs of the functions the role deploys (their versions and aliases are included)."
  type        = list(string)
}

variable "artifact_bucket_arn" {
  description = "ARN of the artifact bucket."
  type        = string
}

variable "artifact_prefix" {
  description = "Key prefix of the artifacts inside the bucket, ending with \"/\"."
  type        = string
}

variable "execution_role_arns" {
  description = "Execution roles of the functions, readable so that terraform plan can run in CI."
  type        = list(string)
  default     = []
}

variable "log_group_arns" {
  description = "Log groups of the functions, readable so that terraform plan can run in CI."
  type        = list(string)
  default     = []
}

variable "state_bucket" {
  description = "S3 bucket holding this environment's Terraform state (the deploy workflow runs terraform apply); null to grant nothing."
  type        = string
  default     = null
}

variable "state_key" {
  description = "Key of the state object inside state_bucket (workspace prefix env:/<environment>/ is added)."
  type        = string
  default     = "terraform.tfstate"
}

variable "infra_role_name" {
  description = "Name of the infrastructure role (terraform apply), trusted like the deploy role."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource the infrastructure role manages (<prefix>-<env>): functions, layer, execution roles, log groups."
  type        = string
}

variable "alias_name" {
  description = "Alias verify's remote check invokes; the deploy role may invoke nothing else."
  type        = string
  default     = "live"
}

variable "trusted_layer_arns" {
  description = "Unversioned ARNs of layers not ours that may be attached (invoke.yaml verify.trusted_layers)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.trusted_layer_arns : can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]+$", arn))])
    error_message = "trusted_layer_arns takes unversioned layer ARNs (arn:aws:lambda:REGION:ACCOUNT:layer:NAME)."
  }
}

variable "share_account_ids" {
  description = "Accounts the deploy role may share layer versions with (invoke.yaml share.accounts)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.share_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "share_account_ids takes 12-digit account IDs."
  }
}

variable "share_organization_id" {
  description = "Organization the deploy role may share layer versions with (invoke.yaml share.organization_id); null for none."
  type        = string
  default     = null
}

variable "pin_job_workflow_ref" {
  description = "Whether both subjects also pin job_workflow_ref to the deploy workflow on main; needs the repository's OIDC subject template to include repo, context and job_workflow_ref (README, Security model)."
  type        = bool
  default     = true
}

variable "infra_environment" {
  description = "GitHub environment whose jobs may assume the infrastructure role; null for \"<environment>-infra\". Must differ from environment, so the deploy job cannot assume it."
  type        = string
  default     = null
}

variable "boundary_statements" {
  description = "Extra Allow statements for the execution roles' permissions boundary, for what a team's functions need beyond logs, traces, invoking this stack's functions and the artifact bucket. No wildcard actions."
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
  }))
  default = []

  validation {
    condition     = alltrue(flatten([for s in var.boundary_statements : [for a in s.actions : !strcontains(a, "*") && !startswith(a, "iam:") && !startswith(a, "sts:")]]))
    error_message = "boundary_statements takes no wildcard, iam: or sts: actions: the boundary is what keeps a created role from granting itself more."
  }
}

variable "deploy_workflow" {
  description = "Path of the deploy workflow in the repository, pinned by pin_job_workflow_ref."
  type        = string
  default     = ".github/workflows/deploy.yml"
}

variable "layer_cache_bucket" {
  description = "Another environment's artifact bucket the deploy role may read built layers from (the shared remote cache); empty for none."
  type        = string
  default     = ""
}

variable "layer_cache_publisher_arn" {
  description = "The layer (ARN without a version) whose versions vouch for the shared cache's bytes; the deploy role may read its versions. Empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.layer_cache_publisher_arn == "" || can(regex("^arn:[a-z-]+:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]+$", var.layer_cache_publisher_arn))
    error_message = "layer_cache_publisher_arn takes a layer ARN without a version (arn:aws:lambda:REGION:ACCOUNT:layer:NAME)."
  }
}

variable "secret_arns" {
  description = "ARNs of the secrets the functions read (the database URL's): the execution boundary allows GetSecretValue on exactly these, the deploy role DescribeSecret (the preflight's existence check)."
  type        = list(string)
  default     = []
}
